#include "session.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "event-channel.hpp"
#include "fuse-channel.hpp"
#include "shared-memory.hpp"
#include "worker-pool.hpp"

namespace xenfs {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  std::atomic_signal_fence(std::memory_order_seq_cst);
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A guest-supplied event channel must be an eventfd: a memfd or a regular file polls as always readable, and the
// ring thread would spin on it for as long as the guest stays connected. Linux names an eventfd's file in /proc.
bool is_eventfd(int fd) {
  char link[64];
  char target[32];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return false;
  target[n] = '\0';
  return strcmp(target, "anon_inode:[eventfd]") == 0;
}

size_t data_bytes(const proto::Request& req, const OpSpec& spec) {
  if (spec.data == DataDir::kOut) return req.len;
  if (spec.data == DataDir::kIn) return req.payload_len;
  return 0;
}

}  // namespace

FsIdentity::FsIdentity(const SessionLimits& l) : active_(l.act_as) {
  if (!active_) return;
  // Raw syscalls: they change this thread only, which is the point (pool threads serve several guests).
  old_gid_ = static_cast<int>(syscall(SYS_setfsgid, l.fs_gid));
  old_uid_ = static_cast<int>(syscall(SYS_setfsuid, l.fs_uid));
}

FsIdentity::~FsIdentity() {
  if (!active_) return;
  syscall(SYS_setfsuid, old_uid_);
  syscall(SYS_setfsgid, old_gid_);
}

void drop_thread_groups() { syscall(SYS_setgroups, 0, nullptr); }

Session::Session(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits)
    : backend_(std::move(backend)), features_(features), limits_(limits) {}

Session::~Session() = default;

void Session::start(ViolationFn on_violation) {
  on_violation_ = std::move(on_violation);
  thread_ = std::thread([self = shared_from_this()] {
    drop_thread_groups();
    self->run();
  });
}

void Session::stop() {
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopping_.store(true);
  wake();
  flight_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::unique_lock<std::mutex> lock(flight_mu_);
  flight_cv_.wait(lock, [this] { return pool_tasks_ == 0; });
  lock.unlock();
  // Its locks go before its handles, and whoever waited on them is granted; none of its own waits is answered.
  LockTable::shared().drop_session(this);
  backend_->release_all();
  inval_.end();
  detach_fuse();
}

void Session::report_events(EventSource source) {
  if (source.log) events_ = std::make_unique<ChangeEvents>(*backend_, std::move(source));
}

void Session::call_backend(const proto::Request& req, const OpSpec& spec, IoSpan payload, IoSpan out,
                           proto::Response& rsp) {
  FsIdentity as(limits_);
  InvalidationCall inval(inval_);
  std::optional<ChangeEventCall> events;
  if (events_) events.emplace(*events_);
  HookPair hooks(inval, events ? &*events : nullptr);
  execute(*backend_, req, spec, payload, out, rsp, &hooks);
}

int Session::attach_fuse(int fd, uint64_t root) {
  int rc = fuse_device_check(fd);
  if (rc < 0) return rc;
  if (root < 1 || root > backend_->root_count()) return -EINVAL;
  std::lock_guard<std::mutex> lock(fuse_mu_);
  if (fuse_) return -EBUSY;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return -errno;
  fuse_ = AttachedFuse::start(copy, root);
  if (!fuse_) return -EAGAIN;
  inval_.attach(fuse_);
  return 0;
}

bool Session::fuse_attached() {
  std::lock_guard<std::mutex> lock(fuse_mu_);
  return fuse_ != nullptr;
}

uint32_t Session::backing_files() {
  std::lock_guard<std::mutex> lock(fuse_mu_);
  return static_cast<uint32_t>(backing_.size());
}

void Session::detach_fuse() {
  std::shared_ptr<AttachedFuse> conn;
  {
    std::lock_guard<std::mutex> lock(fuse_mu_);
    if (!fuse_) return;
    // Registrations outlive dom0's descriptor (they belong to the connection, which the guest holds): drop each.
    for (auto& [key, b] : backing_) fuse_backing_close(fuse_->fd(), b.id);
    backing_.clear();
    backing_by_fh_.clear();
    conn = std::move(fuse_);
  }
  inval_.detach();
  conn->stop();  // its notifier closes the descriptor
}

void Session::track_backing(const proto::Request& req, proto::Response& rsp) {
  if (req.op == proto::kRelease) {
    std::lock_guard<std::mutex> lock(fuse_mu_);
    auto it = backing_by_fh_.find(req.fh);
    if (it == backing_by_fh_.end()) return;
    auto b = backing_.find(it->second);
    backing_by_fh_.erase(it);
    if (b == backing_.end() || --b->second.handles > 0) return;
    if (fuse_) fuse_backing_close(fuse_->fd(), b->second.id);
    backing_.erase(b);
    return;
  }
  if ((req.op != proto::kOpen && req.op != proto::kCreate) || !(req.flags & proto::kFlagWantBacking)) return;
  register_backing(rsp.fh, rsp);
}

// Without an attached connection, or when the kernel refuses, the open stands without passthrough: the front end
// then serves the file's reads and writes through dom0.
void Session::register_backing(uint64_t fh, proto::Response& rsp) {
  FileBackend::BackingKey key;
  if (backend_->backing_key(fh, key) < 0) return;
  std::lock_guard<std::mutex> lock(fuse_mu_);
  if (!fuse_) return;
  try {
    auto it = backing_.find(key);
    if (it == backing_.end()) {
      // Decided once per registration, for every open that shares it: whether this guest may write the file at
      // all, not whether this open writes (a read-only registration could not serve a later writable open).
      bool writable;
      {
        FsIdentity as(limits_);
        writable = backend_->may_write(fh);
      }
      int fd = backend_->backing_fd(fh, writable);
      if (fd < 0) return;
      int id = fuse_backing_open(fuse_->fd(), fd);
      close(fd);
      if (id <= 0) return;
      try {
        it = backing_.emplace(key, Backing{id, 0}).first;
      } catch (...) {
        fuse_backing_close(fuse_->fd(), id);
        return;
      }
    }
    backing_by_fh_[fh] = key;
    it->second.handles++;
    rsp.flags |= proto::kRspBacking;
    rsp.backing_id = it->second.id;
  } catch (...) {
    // Out of memory: the open stands without passthrough.
  }
}

void Session::violation(const std::string& reason) {
  stopping_.store(true);
  if (on_violation_) on_violation_(true, reason);
}

void Session::ended(const std::string& reason) {
  stopping_.store(true);
  if (on_violation_) on_violation_(false, reason);
}

void Session::answer_error(const proto::Request& req, int status) {
  proto::Response rsp{};
  rsp.id = req.id;
  rsp.status = status;
  stats_.errors++;
  respond(rsp, nullptr, 0);
}

void Session::dispatch(const proto::Request& req, bool alone, std::vector<uint8_t> ext) {
  stats_.requests++;
  const OpSpec* spec = op_spec(req.op);
  int rc = check_header(req, spec, features_);
  if (rc < 0) return answer_error(req, rc);
  if (serve_locks(req)) return;
  if (spec->run_on == RunOn::kSession) return process(req, *spec, ext);
  if (spec->run_on == RunOn::kSessionIdle && alone && pool_idle()) {
    // A guest working one request at a time (a FUSE front end serving a single application thread) would pay a
    // thread wake-up on each create, open, close or unlink for a syscall of a few microseconds.
    return process(req, *spec, ext);
  }
  size_t bytes = data_bytes(req, *spec);
  {
    // Backpressure, not an error: the ring thread stops taking requests until the pool drains below the limit,
    // so a guest can queue at most its ring's worth of work and never more than the byte limit in flight.
    std::unique_lock<std::mutex> lock(flight_mu_);
    flight_cv_.wait(lock, [&] {
      return stopping_.load() || stats_.bytes_in_flight.load() == 0 ||
             stats_.bytes_in_flight.load() + bytes <= limits_.max_bytes_in_flight;
    });
    pool_tasks_++;
    stats_.pooled++;
    stats_.bytes_in_flight += bytes;
    stats_.in_flight++;
  }
  WorkerPool::shared().submit([self = shared_from_this(), req, spec, bytes, ext = std::move(ext)] {
    self->process(req, *spec, ext);
    std::lock_guard<std::mutex> lock(self->flight_mu_);
    self->pool_tasks_--;
    self->stats_.bytes_in_flight -= bytes;
    self->stats_.in_flight--;
    self->flight_cv_.notify_all();
  });
}

bool Session::pool_idle() {
  std::lock_guard<std::mutex> lock(flight_mu_);
  return pool_tasks_ == 0;
}

void Session::finish(const proto::Request& req, const OpSpec& spec, proto::Response& rsp, const uint8_t* data) {
  if (rsp.status < 0) stats_.errors++;
  if (rsp.status == 0) track_backing(req, rsp);
  // Data through dom0 only: with passthrough the kernel reads and writes the backing file and dom0 counts nothing.
  if (rsp.status == 0 && req.op == proto::kRead) stats_.bytes_read += rsp.len;
  if (rsp.status == 0 && req.op == proto::kWrite) stats_.bytes_written += rsp.len;
  // Output data follows only a successful reply to a request that asked for some (docs/protocol.md).
  size_t len = (rsp.status == 0 && spec.data == DataDir::kOut && req.len > 0) ? rsp.len : 0;
  respond(rsp, data, len);
}

// ---------------------------------------------------------------------------------------------------------------
// Ring transport

RingSession::RingSession(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits,
                         const RingSetup& setup)
    : Session(std::move(backend), features, limits), slots_(setup.ring_slots), evt_rx_(-1), evt_tx_(-1),
      stop_fd_(-1) {
  std::string why;
  if (!is_eventfd(setup.evt_rx) || !is_eventfd(setup.evt_tx))
    throw std::runtime_error("event channel descriptors must be eventfds");
  if (!ring_size_ok(setup.ring_slots)) throw std::runtime_error("ring size must be a power of two in 8..256");
  size_t pages_needed = (ring_bytes(setup.ring_slots) + proto::kPageSize - 1) / proto::kPageSize;
  if (setup.ring_refs.size() != pages_needed)
    throw std::runtime_error("ring needs " + std::to_string(pages_needed) + " grant references");
  if (check_domain_memory(setup.mem_fd, size_t{setup.mem_pages} * proto::kPageSize, why) < 0)
    throw std::runtime_error(why);
  mapper_ = std::make_unique<GrantMapper>(setup.mem_fd, setup.mem_pages, setup.grant_table_offset,
                                          setup.grant_entries, kDom0,
                                          limits.max_mapped_grants + static_cast<uint32_t>(pages_needed));
  if (!mapper_->ok()) throw std::runtime_error(mapper_->error());
  int rc = mapper_->map_contiguous(setup.ring_refs.data(), static_cast<uint32_t>(pages_needed), ring_map_);
  if (rc < 0) throw std::runtime_error(std::string("mapping the ring failed: ") + strerror(-rc));
  ring_ = std::make_unique<BackRingCore>(static_cast<uint8_t*>(ring_map_.runs[0].iov_base), setup.ring_slots);
  evt_rx_ = dup(setup.evt_rx);
  evt_tx_ = dup(setup.evt_tx);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (evt_rx_ < 0 || evt_tx_ < 0 || stop_fd_ < 0) throw std::runtime_error("event channel setup failed");
  if (features & proto::kFeatPersistentGrants) persistent_.resize(setup.grant_entries);
}

int RingSession::map_persistent(const proto::Request& req, size_t bytes, std::vector<iovec>& iov) {
  size_t pages = std::min<size_t>((bytes + proto::kPageSize - 1) / proto::kPageSize, req.nsegs);
  iov.clear();
  std::lock_guard<std::mutex> lock(persistent_mu_);
  uint32_t missing[proto::kMaxSegs];
  uint32_t nmissing = 0;
  for (size_t i = 0; i < pages; i++) {
    uint32_t ref = req.segs[i];
    if (ref >= persistent_.size()) return -EINVAL;
    if (!persistent_[ref]) missing[nmissing++] = ref;
  }
  if (nmissing) {
    // Map every new reference of this request in one batch: the guest's buffers are contiguous frames, so this is
    // one mmap per buffer for the whole connection, not one per page (dom0's VMA count stays small).
    GrantMapping m;
    int rc = mapper_->map(missing, nmissing, true, m);
    if (rc < 0) return rc;
    uint32_t k = 0;
    for (auto& run : m.runs)
      for (size_t off = 0; off < run.iov_len && k < nmissing; off += proto::kPageSize)
        if (!persistent_[missing[k]]) persistent_[missing[k++]] = static_cast<uint8_t*>(run.iov_base) + off;
        else k++;
    persistent_maps_.push_back(std::move(m));
  }
  for (size_t i = 0; i < pages; i++) {
    uint8_t* base = persistent_[req.segs[i]];
    // Pages that follow each other in dom0's address space merge into one iovec: fewer, longer copies.
    if (!iov.empty() && static_cast<uint8_t*>(iov.back().iov_base) + iov.back().iov_len == base) {
      iov.back().iov_len += proto::kPageSize;
    } else {
      iov.push_back({base, proto::kPageSize});
    }
  }
  return 0;
}

RingSession::~RingSession() {
  for (auto& m : persistent_maps_) mapper_->unmap(m);
  if (mapper_ && !ring_map_.refs.empty()) mapper_->unmap(ring_map_);
  for (int fd : {evt_rx_, evt_tx_, stop_fd_})
    if (fd >= 0) close(fd);
}

void RingSession::wake() { evtchn_notify(stop_fd_); }

bool RingSession::spin_for_requests() {
  if (poll_ns_ == 0) return false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(poll_ns_);
  do {
    for (int i = 0; i < 64; i++) {
      if (ring_->unconsumed_requests() != 0 || stopping_.load(std::memory_order_relaxed)) return true;
      cpu_relax();
    }
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

void RingSession::sleep_for_requests() {
  pollfd fds[2] = {{evt_rx_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  auto slept_from = std::chrono::steady_clock::now();
  if (poll(fds, 2, -1) > 0 && (fds[0].revents & POLLIN)) {
    evtchn_drain(evt_rx_);
    stats_.wakeups++;
  }
  // Decided after the sleep, as KVM's halt polling does: woken within the polling limit means a longer poll would
  // have caught the request without a wake-up, so poll longer; a sleep past the limit means the guest went
  // quiet, so poll less (down to not at all).
  const uint64_t max_ns = uint64_t{limits_.spin_us} * 1000;
  auto slept = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - slept_from);
  if (static_cast<uint64_t>(slept.count()) < max_ns) {
    uint64_t grown = poll_ns_ == 0 ? 10000 : uint64_t{poll_ns_} * 2;
    poll_ns_ = static_cast<uint32_t>(std::min(grown, max_ns));
  } else {
    poll_ns_ /= 2;
  }
}

// The canonical consumer loop of io/ring.h: take every request the guest has published, serve them, and only
// when there are none re-arm req_event, check once more, and sleep.
void RingSession::run() {
  proto::Request req;
  while (!stopping_.load()) {
    int64_t n = ring_->unconsumed_requests();
    if (n == 0 && !spin_for_requests()) {
      n = ring_->final_check_for_requests();
      if (n == 0) {
        sleep_for_requests();
        continue;
      }
    }
    if (n < 0) return violation("req_prod runs past the ring");
    for (int64_t i = 0; i < n && !stopping_.load(); i++) {
      ring_->copy_request(req);
      dispatch(req, i == n - 1 && ring_->unconsumed_requests() == 0);
    }
  }
}

void RingSession::process(const proto::Request& req, const OpSpec& spec, const std::vector<uint8_t>&) {
  proto::Response rsp{};
  rsp.id = req.id;
  GrantMapping in_map, out_map;
  std::vector<iovec> cached;
  iovec inline_iov{const_cast<uint8_t*>(req.inline_data), req.payload_len};
  IoSpan payload{&inline_iov, 1, req.payload_len};
  IoSpan out{};
  bool ext = req.flags & proto::kFlagPayloadExt;
  bool wants_out = !ext && spec.data == DataDir::kOut && req.len > 0;
  int rc = 0;
  if ((ext || wants_out) && !persistent_.empty()) {
    size_t bytes = ext ? req.payload_len : req.len;
    rc = map_persistent(req, bytes, cached);
    IoSpan span{cached.data(), static_cast<int>(cached.size()), 0};
    for (auto& v : cached) span.len += v.iov_len;
    (ext ? payload : out) = span;
  } else if (ext) {
    rc = mapper_->map(req.segs, req.nsegs, false, in_map);
    payload = IoSpan{in_map.runs.data(), static_cast<int>(in_map.runs.size()), size_t{req.nsegs} * proto::kPageSize};
  } else if (wants_out) {
    rc = mapper_->map(req.segs, req.nsegs, true, out_map);
    out = IoSpan{out_map.runs.data(), static_cast<int>(out_map.runs.size()), size_t{req.nsegs} * proto::kPageSize};
  }
  if (rc < 0) {
    rsp.status = rc;
  } else {
    call_backend(req, spec, payload, out, rsp);
  }
  mapper_->unmap(in_map);
  mapper_->unmap(out_map);
  // The data already sits in the guest's pages; only the slot goes on the ring.
  finish(req, spec, rsp, nullptr);
}

void RingSession::respond(const proto::Response& rsp, const uint8_t*, size_t) {
  bool notify;
  {
    std::lock_guard<std::mutex> lock(rsp_mu_);
    std::memcpy(ring_->response_slot(), &rsp, proto::kSlotSize);
    ring_->advance_response();
    notify = ring_->push_responses();
  }
  if (notify) {
    stats_.notifies++;
    evtchn_notify(evt_tx_);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Stream transport (UNIX socket or TCP): the same requests, with the payload and output carried in the stream.

StreamSession::StreamSession(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits, int fd)
    : Session(std::move(backend), features, limits), fd_(dup(fd)), stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0 || stop_fd_ < 0) throw std::runtime_error("stream setup failed");
  // Writes block (bounded): a peer that stops reading is cut off instead of pinning a worker forever.
  timeval tv{30, 0};
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

StreamSession::~StreamSession() {
  if (fd_ >= 0) close(fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void StreamSession::wake() {
  evtchn_notify(stop_fd_);
  shutdown(fd_, SHUT_RDWR);
}

bool StreamSession::read_more(std::vector<uint8_t>& buf, size_t& have) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (stopping_.load()) return false;
    ssize_t n = recv(fd_, buf.data() + have, buf.size() - have, MSG_DONTWAIT);
    if (n > 0) {
      have += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return false;
    if (fds[1].revents) return false;
  }
}

void StreamSession::run() {
  std::vector<uint8_t> buf(proto::kSlotSize + kMaxPayload + (64u << 10));
  size_t have = 0, at = 0;
  proto::Request req;
  for (;;) {
    while (have - at >= proto::kSlotSize) {
      std::memcpy(&req, buf.data() + at, proto::kSlotSize);
      size_t ext = (req.flags & proto::kFlagPayloadExt) ? req.payload_len : 0;
      // The frame length is guest-controlled: bound it before waiting for that many bytes.
      if (ext > kMaxPayload) return violation("stream payload longer than any request may carry");
      if (have - at < proto::kSlotSize + ext) break;
      std::vector<uint8_t> payload(buf.begin() + static_cast<long>(at + proto::kSlotSize),
                                   buf.begin() + static_cast<long>(at + proto::kSlotSize + ext));
      at += proto::kSlotSize + ext;
      if (req.nsegs != 0) {
        answer_error(req, -EINVAL);
        continue;
      }
      dispatch(req, have - at < proto::kSlotSize, std::move(payload));
    }
    if (at > 0) {
      std::memmove(buf.data(), buf.data() + at, have - at);
      have -= at;
      at = 0;
    }
    if (!read_more(buf, have)) {
      if (!stopping_.load()) ended("stream closed by the peer");
      return;
    }
  }
}

void StreamSession::process(const proto::Request& req, const OpSpec& spec, const std::vector<uint8_t>& ext) {
  proto::Response rsp{};
  rsp.id = req.id;
  bool is_ext = req.flags & proto::kFlagPayloadExt;
  iovec in_iov{is_ext ? const_cast<uint8_t*>(ext.data()) : const_cast<uint8_t*>(req.inline_data), req.payload_len};
  IoSpan payload{&in_iov, 1, is_ext ? ext.size() : size_t{req.payload_len}};
  std::vector<uint8_t> out_buf(spec.data == DataDir::kOut ? req.len : 0);
  iovec out_iov{out_buf.data(), out_buf.size()};
  IoSpan out{&out_iov, 1, out_buf.size()};
  {
    call_backend(req, spec, payload, out, rsp);
  }
  if (rsp.status == 0 && spec.data == DataDir::kOut && rsp.len > out_buf.size() && req.len > 0) rsp.status = -EIO;
  finish(req, spec, rsp, out_buf.data());
}

void StreamSession::respond(const proto::Response& rsp, const uint8_t* data, size_t len) {
  iovec iov[2] = {{const_cast<proto::Response*>(&rsp), proto::kSlotSize}, {const_cast<uint8_t*>(data), len}};
  std::lock_guard<std::mutex> lock(write_mu_);
  int cnt = len ? 2 : 1;
  size_t total = proto::kSlotSize + len, done = 0;
  while (done < total) {
    msghdr msg{};
    iovec part[2];
    int k = 0;
    size_t skip = done;
    for (int i = 0; i < cnt; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      part[k++] = {static_cast<uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip};
      skip = 0;
    }
    msg.msg_iov = part;
    msg.msg_iovlen = static_cast<size_t>(k);
    ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd_, POLLOUT, 0};
        if (poll(&p, 1, 30000) > 0) continue;
      }
      stopping_.store(true);
      return;
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace xenfs

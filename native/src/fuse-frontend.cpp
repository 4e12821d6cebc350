#include "fuse-frontend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

#include "event-channel.hpp"
#include "fuse-kernel.hpp"

namespace xenfs {

struct FuseFrontend::Link {
  uint8_t* base = nullptr;
  size_t bytes = 0;
  std::unique_ptr<FrontRingCore> ring;
  uint8_t* data0 = nullptr;
  uint32_t ref0 = 0;
  uint32_t slots = 0;
  int rx = -1;
  int tx = -1;
  uint64_t root = 0;

  uint8_t* data(uint32_t tag) const { return data0 + size_t{tag} * proto::kMaxData; }
  ~Link() {
    if (base) munmap(base, bytes);
    if (rx >= 0) close(rx);
    if (tx >= 0) close(tx);
  }
};

namespace {

using Clock = std::chrono::steady_clock;

// A FUSE request as read: its header, and the bytes after it.
struct In {
  const fuse_in_header* h;
  const uint8_t* body;
  size_t len;

  template <class T>
  const T* arg(size_t size = sizeof(T)) const { return len >= size ? reinterpret_cast<const T*>(body) : nullptr; }
  // The NUL-terminated string at `off` in the body; nullptr when there is none. `next` is where the one after it
  // starts.
  const char* str(size_t off, size_t& slen, size_t& next) const {
    if (off >= len) return nullptr;
    const void* nul = memchr(body + off, 0, len - off);
    if (!nul) return nullptr;
    slen = static_cast<const uint8_t*>(nul) - (body + off);
    next = off + slen + 1;
    return reinterpret_cast<const char*>(body + off);
  }
};

// What a request on the ring is waiting to become: the FUSE request it answers.
struct Pending {
  uint64_t id = 0;
  uint64_t unique = 0;
  uint32_t opcode = 0;
  uint32_t size = 0;  // GETXATTR/LISTXATTR: the caller's buffer (0 asks for the size)
  bool live = false;
};

// What a request does with an open handle, for when that handle belongs to a session that is gone: closing it has
// nothing left to do on dom0; I/O through it has nowhere to go.
bool closes_handle(uint32_t op) { return op == FUSE_FLUSH || op == FUSE_RELEASE || op == FUSE_RELEASEDIR; }
bool handle_io(uint32_t op) {
  return op == FUSE_READ || op == FUSE_WRITE || op == FUSE_FSYNC || op == FUSE_FALLOCATE || op == FUSE_READDIR;
}
bool lock_op(uint32_t op) { return op == FUSE_GETLK || op == FUSE_SETLK || op == FUSE_SETLKW; }
// FUSE requests that have no reply.
bool unanswered(uint32_t op) { return op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT; }

void put_attr(fuse_attr& f, const proto::Attr& a) {
  f.ino = a.ino;
  f.size = a.size;
  f.blocks = a.blocks;
  f.atime = static_cast<uint64_t>(a.atime_s);
  f.mtime = static_cast<uint64_t>(a.mtime_s);
  f.ctime = static_cast<uint64_t>(a.ctime_s);
  f.atimensec = a.atime_ns;
  f.mtimensec = a.mtime_ns;
  f.ctimensec = a.ctime_ns;
  f.mode = a.mode;
  f.nlink = a.nlink;
  f.uid = a.uid;
  f.gid = a.gid;
  f.rdev = a.rdev;
  f.blksize = a.blksize;
}

}  // namespace

// The front end's thread and everything only it touches.
class FrontendLoop {
 public:
  explicit FrontendLoop(FuseFrontend& fe)
      : fe_(fe), cfg_(fe.cfg_), c_(fe.counters_), buf_(std::max<size_t>(cfg_.max_write + 4096 + 64, 1 << 16)) {}
  void run();
  int exit_err() const { return exit_err_; }
  const std::string& exit_why() const { return exit_why_.empty() ? stopped_ : exit_why_; }

 private:
  inline static const std::string stopped_ = "stopped";
  FuseFrontend& fe_;
  const FrontendConfig& cfg_;
  FuseFrontend::Counters& c_;
  std::vector<uint8_t> buf_;
  std::unique_ptr<FuseFrontend::Link> link_;
  std::vector<Pending> pending_;
  std::vector<uint32_t> free_tags_;
  uint64_t next_seq_ = 1;
  bool notify_ = false;
  // FORGETs the ring had no room for yet (a BATCH_FORGET carries hundreds): node, count.
  std::deque<std::pair<uint64_t, uint64_t>> forgets_;
  Clock::time_point detached_at_ = Clock::now();
  int exit_err_ = 0;
  std::string exit_why_;

  bool take_mail();
  void set_link(std::unique_ptr<FuseFrontend::Link> link);
  void fail_in_flight();
  bool waiting_for_dom0() const { return !link_ && Clock::now() - detached_at_ < std::chrono::milliseconds(cfg_.wait_ms); }
  bool can_take_request() const {
    return link_ ? !free_tags_.empty() && forgets_.empty() && held_.empty() : held_.size() < kMaxHeld;
  }
  // Reads and handles what /dev/fuse holds; false when it held nothing. Sets exit_why_ when the mount is gone.
  bool read_requests();
  void handle(const In& in);
  // While no ring is attached: what can be answered without dom0 is, the rest is held for the next ring.
  void handle_detached(const In& in);
  bool release_held();
  // Requests read while dom0 was away, replayed when the next ring comes (or failed when wait_ms runs out).
  static constexpr size_t kMaxHeld = 256;
  std::deque<std::vector<uint8_t>> held_;
  bool drain_responses();
  void complete(const proto::Response& r);
  bool push_forgets();
  bool spin();
  void sleep();

  uint64_t node(uint64_t fuse_id) const { return swap(fuse_id); }
  uint64_t swap(uint64_t id) const {
    if (id == FUSE_ROOT_ID) return link_->root;
    if (id == link_->root) return FUSE_ROOT_ID;
    return id;
  }

  // Starts a request on the ring for the FUSE request `in`: the slot is zeroed and addressed; the caller fills
  // the rest and calls publish().
  proto::Request* begin(const In& in, uint8_t op, uint64_t nodeid, uint32_t size = 0);
  proto::Request* begin_raw(uint8_t op, uint64_t dom0_node, const Pending& p);
  // begin() for a request about the open handle `fh`.
  proto::Request* begin_fh(const In& in, uint8_t op, uint64_t fh) {
    proto::Request* rq = begin(in, op, 0);
    rq->fh = fh;
    return rq;
  }
  // begin() for a request whose payload starts with the NUL-terminated name at `off` in the body (name1), with
  // `rest` after it; nullptr, and EINVAL answered, when there is no name there.
  proto::Request* begin_named(const In& in, uint8_t op, uint64_t nodeid, size_t off, size_t& next,
                              std::pair<const void*, size_t> rest = {nullptr, 0});
  // Appends the payload (names, then data): inline when it fits, else in the tag's pages.
  void payload(proto::Request* rq, std::initializer_list<std::pair<const void*, size_t>> parts);
  void output(proto::Request* rq, uint32_t len);
  void publish();
  uint32_t tag_of(const proto::Request* rq) const { return static_cast<uint32_t>(rq->id & 0xff); }
  uint32_t lock_waits() const {
    return static_cast<uint32_t>(std::count_if(pending_.begin(), pending_.end(),
                                               [](const Pending& p) { return p.live && p.opcode == FUSE_SETLKW; }));
  }

  void reply(uint64_t unique, int error, std::initializer_list<iovec> body = {});
  void reply_error(uint64_t unique, int err) { reply(unique, err > 0 ? -err : err); }
  void reply_entry(const Pending& p, const proto::Response& r, const fusek::OpenOut* open = nullptr);
  void reply_open(const Pending& p, const proto::Response& r, bool dir);
  void reply_readdir(const Pending& p, const proto::Response& r, uint8_t* data);
  // Another guest is writing the file (through passthrough, unseen by dom0): its size and times are only good
  // for this answer.
  uint32_t attr_timeout(const proto::Response& r) const { return (r.flags & proto::kRspVolatile) ? 0 : cfg_.attr_timeout_ms; }
  void valid(uint32_t ms, uint64_t& s, uint32_t& ns) const {
    s = ms / 1000;
    ns = (ms % 1000) * 1000000;
  }
};

void FrontendLoop::run() {
  int fl = fcntl(cfg_.fuse_fd, F_GETFL);
  if (fl >= 0) fcntl(cfg_.fuse_fd, F_SETFL, fl | O_NONBLOCK);
  for (;;) {
    if (!take_mail()) break;
    bool progress = push_forgets();
    progress |= release_held();
    progress |= read_requests();
    if (!exit_why_.empty()) break;
    if (link_) {
      if (notify_) {
        evtchn_notify(link_->tx);
        notify_ = false;
      }
      progress |= drain_responses();
    }
    if (progress) continue;
    if (spin()) continue;
    sleep();
  }
  fail_in_flight();
  link_.reset();
}

bool FrontendLoop::take_mail() {
  std::unique_ptr<FuseFrontend::Link> incoming;
  bool detach;
  {
    std::lock_guard<std::mutex> g(fe_.mu_);
    if (fe_.stop_requested_) return false;
    incoming = std::move(fe_.incoming_);
    detach = fe_.detach_requested_;
    fe_.detach_requested_ = false;
  }
  if (detach || incoming) set_link(std::move(incoming));
  return true;
}

void FrontendLoop::set_link(std::unique_ptr<FuseFrontend::Link> link) {
  fail_in_flight();
  link_ = std::move(link);
  c_.attached = link_ != nullptr;
  if (!link_) {
    detached_at_ = Clock::now();
    return;
  }
  c_.attaches++;
  pending_.assign(link_->slots, Pending{});
  free_tags_.clear();
  for (uint32_t t = link_->slots; t-- > 0;) free_tags_.push_back(t);
  // Lookups counted by the old session died with it: the new one owes nothing to forget.
  forgets_.clear();
}

// The session these requests went to is gone, and its nodes and handles with it. RELEASE succeeds (its handle is
// gone anyway); FORGET and INTERRUPT have no reply. A request about a node gets ESTALE, on which the kernel walks
// the path again once (LOOKUP_REVAL) and finds the new session's nodes; what names a handle gets EIO.
void FrontendLoop::fail_in_flight() {
  for (Pending& p : pending_) {
    if (!p.live) continue;
    p.live = false;
    if (unanswered(p.opcode)) continue;
    reply(p.unique, closes_handle(p.opcode) ? 0 : handle_io(p.opcode) || lock_op(p.opcode) ? -EIO : -ESTALE);
  }
  c_.in_flight = 0;
}

bool FrontendLoop::read_requests() {
  bool any = false;
  while (can_take_request()) {
    ssize_t n = read(cfg_.fuse_fd, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      // ENODEV: unmounted (or the connection aborted). Anything else is as final.
      exit_err_ = errno == ENODEV ? 0 : errno;
      exit_why_ = errno == ENODEV ? "unmounted" : std::string("reading /dev/fuse failed: ") + strerror(errno);
      return any;
    }
    any = true;
    if (static_cast<size_t>(n) < sizeof(fuse_in_header)) continue;
    const auto* h = reinterpret_cast<const fuse_in_header*>(buf_.data());
    if (h->len != static_cast<uint32_t>(n)) continue;
    c_.requests++;
    In in{h, buf_.data() + sizeof *h, static_cast<size_t>(n) - sizeof *h};
    if (link_) handle(in);
    else handle_detached(in);
  }
  return any;
}

void FrontendLoop::handle_detached(const In& in) {
  const uint32_t op = in.h->opcode;
  if (unanswered(op)) return;  // the nodes died with the session; nothing waits on dom0 to interrupt
  // The session that held the handle is gone, and with it anything dom0 had to do at close (passthrough data never
  // waited on dom0). Answered now: a close() must not wait for dom0, and every exec() closes descriptors.
  if (closes_handle(op)) return reply(in.h->unique, 0);
  if (!waiting_for_dom0()) {
    c_.failed_disconnected++;
    return reply_error(in.h->unique, EIO);
  }
  held_.emplace_back(reinterpret_cast<const uint8_t*>(in.h), reinterpret_cast<const uint8_t*>(in.h) + in.h->len);
}

// Replays held requests on the new ring, or fails them once dom0 has been away for wait_ms.
bool FrontendLoop::release_held() {
  bool any = false;
  while (!held_.empty() && (link_ ? !free_tags_.empty() && forgets_.empty() : !waiting_for_dom0())) {
    std::vector<uint8_t> req = std::move(held_.front());
    held_.pop_front();
    const auto* h = reinterpret_cast<const fuse_in_header*>(req.data());
    if (link_) {
      handle(In{h, req.data() + sizeof *h, req.size() - sizeof *h});
    } else {
      c_.failed_disconnected++;
      reply_error(h->unique, EIO);
    }
    any = true;
  }
  return any;
}

proto::Request* FrontendLoop::begin_raw(uint8_t op, uint64_t dom0_node, const Pending& p) {
  uint32_t tag = free_tags_.back();
  free_tags_.pop_back();
  auto* rq = reinterpret_cast<proto::Request*>(link_->ring->request_slot());
  std::memset(rq, 0, proto::kSlotSize);
  rq->id = (next_seq_++ << 8) | tag;
  rq->op = op;
  rq->node = dom0_node;
  pending_[tag] = p;
  pending_[tag].id = rq->id;
  pending_[tag].live = true;
  return rq;
}

proto::Request* FrontendLoop::begin(const In& in, uint8_t op, uint64_t nodeid, uint32_t size) {
  Pending p;
  p.unique = in.h->unique;
  p.opcode = in.h->opcode;
  p.size = size;
  return begin_raw(op, nodeid ? node(nodeid) : 0, p);
}

proto::Request* FrontendLoop::begin_named(const In& in, uint8_t op, uint64_t nodeid, size_t off, size_t& next,
                                          std::pair<const void*, size_t> rest) {
  size_t n = 0;
  const char* name = in.str(off, n, next);
  if (!name) {
    reply_error(in.h->unique, EINVAL);
    return nullptr;
  }
  proto::Request* rq = begin(in, op, nodeid);
  payload(rq, {{name, n}, rest});
  rq->name1_len = static_cast<uint16_t>(n);
  return rq;
}

void FrontendLoop::payload(proto::Request* rq, std::initializer_list<std::pair<const void*, size_t>> parts) {
  size_t total = 0;
  for (const auto& part : parts) total += part.second;
  rq->payload_len = static_cast<uint32_t>(total);
  uint8_t* dst = rq->inline_data;
  if (total > proto::kInlineCapacity) {
    uint32_t tag = tag_of(rq);
    dst = link_->data(tag);
    uint32_t pages = static_cast<uint32_t>((total + proto::kPageSize - 1) / proto::kPageSize);
    rq->flags |= proto::kFlagPayloadExt;
    rq->nsegs = static_cast<uint8_t>(pages);
    for (uint32_t i = 0; i < pages; i++) rq->segs[i] = link_->ref0 + tag * proto::kMaxSegs + i;
  }
  for (const auto& part : parts) {
    if (part.second) std::memcpy(dst, part.first, part.second);
    dst += part.second;
  }
}

void FrontendLoop::output(proto::Request* rq, uint32_t len) {
  len = std::min<uint32_t>(len, proto::kMaxData);
  rq->len = len;
  uint32_t pages = (len + proto::kPageSize - 1) / proto::kPageSize;
  uint32_t tag = tag_of(rq);
  rq->nsegs = static_cast<uint8_t>(pages);
  for (uint32_t i = 0; i < pages; i++) rq->segs[i] = link_->ref0 + tag * proto::kMaxSegs + i;
}

void FrontendLoop::publish() {
  link_->ring->advance_request();
  // Published at once: dom0, polling, starts on it while the next request is read.
  if (link_->ring->push_requests()) notify_ = true;
  c_.forwarded++;
  c_.in_flight++;
}

bool FrontendLoop::push_forgets() {
  bool any = false;
  while (link_ && !forgets_.empty() && !free_tags_.empty()) {
    auto [node, count] = forgets_.front();
    forgets_.pop_front();
    Pending p;
    p.opcode = FUSE_FORGET;
    proto::Request* rq = begin_raw(proto::kForget, node, p);
    rq->arg64 = count;
    publish();
    any = true;
  }
  return any;
}

void FrontendLoop::handle(const In& in) {
  const uint32_t op = in.h->opcode;
  const uint64_t nid = in.h->nodeid;
  size_t n1 = 0, n2 = 0, next = 0, next2 = 0;
  proto::Request* rq = nullptr;
  switch (op) {
    case FUSE_LOOKUP:
      if (!(rq = begin_named(in, proto::kLookup, nid, 0, next))) return;
      break;
    case FUSE_FORGET: {
      const auto* a = in.arg<fuse_forget_in>();
      if (a && nid != FUSE_ROOT_ID) forgets_.emplace_back(node(nid), a->nlookup);
      push_forgets();
      return;
    }
    case FUSE_BATCH_FORGET: {
      const auto* a = in.arg<fuse_batch_forget_in>();
      if (!a) return;
      size_t room = (in.len - sizeof *a) / sizeof(fuse_forget_one);
      const auto* one = reinterpret_cast<const fuse_forget_one*>(in.body + sizeof *a);
      for (size_t i = 0; i < std::min<size_t>(a->count, room); i++)
        if (one[i].nodeid != FUSE_ROOT_ID) forgets_.emplace_back(node(one[i].nodeid), one[i].nlookup);
      push_forgets();
      return;
    }
    case FUSE_GETATTR: {
      const auto* a = in.arg<fuse_getattr_in>();
      rq = begin(in, proto::kGetattr, nid);
      if (a && (a->getattr_flags & FUSE_GETATTR_FH)) rq->fh = a->fh;
      break;
    }
    case FUSE_SETATTR: {
      const auto* a = in.arg<fuse_setattr_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      uint32_t valid = 0;
      if (a->valid & FATTR_MODE) valid |= proto::kSetMode;
      if (a->valid & FATTR_UID) valid |= proto::kSetUid;
      if (a->valid & FATTR_GID) valid |= proto::kSetGid;
      if (a->valid & FATTR_SIZE) valid |= proto::kSetSize;
      if (a->valid & FATTR_ATIME_NOW) valid |= proto::kSetAtimeNow;
      else if (a->valid & FATTR_ATIME) valid |= proto::kSetAtime;
      if (a->valid & FATTR_MTIME_NOW) valid |= proto::kSetMtimeNow;
      else if (a->valid & FATTR_MTIME) valid |= proto::kSetMtime;
      proto::SetattrPayload sp{};
      sp.mode = a->mode;
      sp.uid = a->uid;
      sp.gid = a->gid;
      sp.atime_s = static_cast<int64_t>(a->atime);
      sp.atime_ns = a->atimensec;
      sp.mtime_s = static_cast<int64_t>(a->mtime);
      sp.mtime_ns = a->mtimensec;
      sp.size = a->size;
      rq = begin(in, proto::kSetattr, nid);
      if (a->valid & FATTR_FH) rq->fh = a->fh;
      rq->arg32a = valid;
      rq->arg64 = a->size;
      payload(rq, {{&sp, sizeof sp}});
      break;
    }
    case FUSE_READLINK:
      rq = begin(in, proto::kReadlink, nid);
      output(rq, proto::kMaxPath);
      break;
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
      const auto* a = in.arg<fuse_open_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin(in, op == FUSE_OPEN ? proto::kOpen : proto::kOpendir, nid);
      rq->arg32a = a->flags;
      if (op == FUSE_OPEN && cfg_.passthrough) rq->flags |= proto::kFlagWantBacking;
      break;
    }
    case FUSE_CREATE: {
      const auto* a = in.arg<fuse_create_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      if (!(rq = begin_named(in, proto::kCreate, nid, sizeof *a, next))) return;
      rq->arg32a = a->flags;
      rq->arg32b = a->mode;
      if (cfg_.passthrough) rq->flags |= proto::kFlagWantBacking;
      break;
    }
    case FUSE_READ:
    case FUSE_READDIR: {
      const auto* a = in.arg<fuse_read_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, op == FUSE_READ ? proto::kRead : proto::kReaddir, a->fh);
      rq->offset = a->offset;
      output(rq, a->size);
      if (op == FUSE_READ) c_.data_requests++;
      else rq->arg32a = proto::kReaddirDots;
      break;
    }
    case FUSE_WRITE: {
      const auto* a = in.arg<fuse_write_in>();
      if (!a || in.len - sizeof *a < a->size || a->size > proto::kMaxData) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, proto::kWrite, a->fh);
      rq->offset = a->offset;
      payload(rq, {{in.body + sizeof *a, a->size}});
      c_.data_requests++;
      break;
    }
    case FUSE_FLUSH: {
      const auto* a = in.arg<fuse_flush_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, proto::kFlush, a->fh);
      rq->arg64 = a->lock_owner;
      break;
    }
    case FUSE_FSYNC: {
      const auto* a = in.arg<fuse_fsync_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, proto::kFsync, a->fh);
      rq->arg32a = (a->fsync_flags & FUSE_FSYNC_FDATASYNC) ? 1 : 0;
      break;
    }
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: {
      const auto* a = in.arg<fuse_release_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, proto::kRelease, a->fh);
      if (op == FUSE_RELEASE && (a->release_flags & FUSE_RELEASE_FLOCK_UNLOCK)) {
        rq->arg64 = a->lock_owner;
        rq->arg32a = proto::kReleaseFlockUnlock;
      }
      break;
    }
    case FUSE_MKDIR: {
      const auto* a = in.arg<fuse_mkdir_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      if (!(rq = begin_named(in, proto::kMkdir, nid, sizeof *a, next))) return;
      rq->arg32a = a->mode;
      break;
    }
    case FUSE_MKNOD: {
      const auto* a = in.arg<fuse_mknod_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      if (!(rq = begin_named(in, proto::kMknod, nid, sizeof *a, next))) return;
      rq->arg32a = a->rdev;
      rq->arg32b = a->mode;
      break;
    }
    case FUSE_UNLINK:
    case FUSE_RMDIR:
      if (!(rq = begin_named(in, op == FUSE_UNLINK ? proto::kUnlink : proto::kRmdir, nid, 0, next))) return;
      break;
    case FUSE_SYMLINK: {
      const char* name = in.str(0, n1, next);
      const char* target = name ? in.str(next, n2, next2) : nullptr;
      if (!target) return reply_error(in.h->unique, EINVAL);
      rq = begin(in, proto::kSymlink, nid);
      payload(rq, {{name, n1}, {target, n2}});
      rq->name1_len = static_cast<uint16_t>(n1);
      rq->name2_len = static_cast<uint16_t>(n2);
      break;
    }
    case FUSE_RENAME:
    case FUSE_RENAME2: {
      size_t fixed = op == FUSE_RENAME ? sizeof(fuse_rename_in) : sizeof(fuse_rename2_in);
      const auto* a = in.arg<fuse_rename_in>(fixed);
      const char* from = a ? in.str(fixed, n1, next) : nullptr;
      const char* to = from ? in.str(next, n2, next2) : nullptr;
      if (!to) return reply_error(in.h->unique, EINVAL);
      rq = begin(in, proto::kRename, nid);
      rq->arg64 = node(a->newdir);
      if (op == FUSE_RENAME2) rq->arg32a = reinterpret_cast<const fuse_rename2_in*>(a)->flags;
      payload(rq, {{from, n1}, {to, n2}});
      rq->name1_len = static_cast<uint16_t>(n1);
      rq->name2_len = static_cast<uint16_t>(n2);
      break;
    }
    case FUSE_LINK: {
      const auto* a = in.arg<fuse_link_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      if (!(rq = begin_named(in, proto::kLink, nid, sizeof *a, next))) return;
      rq->arg64 = node(a->oldnodeid);
      break;
    }
    case FUSE_STATFS:
      rq = begin(in, proto::kStatfs, nid);
      break;
    case FUSE_GETXATTR: {
      const auto* a = in.arg<fuse_getxattr_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      if (!(rq = begin_named(in, proto::kGetxattr, nid, sizeof *a, next))) return;
      pending_[tag_of(rq)].size = a->size;
      if (a->size) output(rq, a->size);
      break;
    }
    case FUSE_LISTXATTR: {
      const auto* a = in.arg<fuse_getxattr_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin(in, proto::kListxattr, nid, a->size);
      if (a->size) output(rq, a->size);
      break;
    }
    case FUSE_SETXATTR: {
      // FUSE_SETXATTR_EXT is not negotiated: the argument is the 8-byte compat form.
      const auto* a = in.arg<fuse_setxattr_in>(FUSE_COMPAT_SETXATTR_IN_SIZE);
      const char* name = a ? in.str(FUSE_COMPAT_SETXATTR_IN_SIZE, n1, next) : nullptr;
      if (!name || in.len - next < a->size || n1 + a->size > proto::kMaxData) return reply_error(in.h->unique, name ? E2BIG : EINVAL);
      rq = begin(in, proto::kSetxattr, nid);
      rq->arg32a = a->flags;
      payload(rq, {{name, n1}, {in.body + next, a->size}});
      rq->name1_len = static_cast<uint16_t>(n1);
      break;
    }
    case FUSE_REMOVEXATTR:
      if (!(rq = begin_named(in, proto::kRemovexattr, nid, 0, next))) return;
      break;
    case FUSE_ACCESS: {
      const auto* a = in.arg<fuse_access_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin(in, proto::kAccess, nid);
      rq->arg32a = a->mask;
      break;
    }
    case FUSE_FALLOCATE: {
      const auto* a = in.arg<fuse_fallocate_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      rq = begin_fh(in, proto::kFallocate, a->fh);
      rq->offset = a->offset;
      rq->arg64 = a->length;
      rq->arg32a = a->mode;
      break;
    }
    case FUSE_GETLK:
    case FUSE_SETLK:
    case FUSE_SETLKW: {
      const auto* a = in.arg<fuse_lk_in>();
      if (!a) return reply_error(in.h->unique, EINVAL);
      proto::FileLock lk{};
      lk.start = a->lk.start;
      lk.end = a->lk.end;
      lk.type = a->lk.type;
      lk.pid = a->lk.pid;
      // A wait holds its ring slot until dom0 grants it; past half the ring, waiters would starve every other
      // request of this guest, so the rest are refused as a lock table that is full.
      if (op == FUSE_SETLKW && lock_waits() >= link_->slots / 2) return reply_error(in.h->unique, ENOLCK);
      rq = begin(in, op == FUSE_GETLK ? proto::kGetlk : proto::kSetlk, nid);
      rq->fh = a->fh;
      rq->arg64 = a->owner;
      if (a->lk_flags & FUSE_LK_FLOCK) rq->arg32a |= proto::kLkFlock;
      if (op == FUSE_SETLKW) rq->arg32a |= proto::kLkWait;
      payload(rq, {{&lk, sizeof lk}});
      break;
    }
    case FUSE_INTERRUPT: {
      // Only a lock wait lasts long enough to cancel; anything else is answered soon anyway. The kernel repeats
      // an interrupt that found nothing (EAGAIN), so a lost one costs nothing.
      const auto* a = in.arg<fuse_interrupt_in>();
      if (!a || free_tags_.empty()) return;
      for (const Pending& p : pending_) {
        if (!p.live || p.unique != a->unique || p.opcode != FUSE_SETLKW) continue;
        Pending self;
        self.opcode = FUSE_INTERRUPT;
        rq = begin_raw(proto::kInterrupt, 0, self);
        rq->arg64 = p.id;
        publish();
        return;
      }
      return;
    }
    case FUSE_DESTROY:
      exit_why_ = "unmounted";
      return reply(in.h->unique, 0);
    default:
      // FSYNCDIR, LSEEK, COPY_FILE_RANGE, IOCTL, POLL, BMAP, locks…: ENOSYS makes the kernel do without (and it
      // remembers, for most of them).
      return reply_error(in.h->unique, ENOSYS);
  }
  publish();
}

bool FrontendLoop::drain_responses() {
  bool any = false;
  while (link_ && link_->ring->unconsumed_responses()) {
    proto::Response r;
    std::memcpy(&r, link_->ring->response_slot(), sizeof r);
    link_->ring->consume_response();
    complete(r);
    any = true;
  }
  return any;
}

void FrontendLoop::complete(const proto::Response& r) {
  uint32_t tag = static_cast<uint32_t>(r.id & 0xff);
  if (tag >= pending_.size() || !pending_[tag].live || pending_[tag].id != r.id) return;  // a stray id: ignore
  Pending p = pending_[tag];
  pending_[tag].live = false;
  c_.in_flight--;
  uint8_t* data = link_->data(tag);
  // The tag is reusable once this function returns: nothing below issues a request.
  free_tags_.push_back(tag);
  if (unanswered(p.opcode)) return;
  // A handle of an earlier session (dom0 restarted since it was opened): closing it has nothing left to do, and
  // using it for I/O is the I/O error fuse-native gives too. Locks keep EBADF, fcntl's answer for a handle opened
  // without the access a lock needs.
  if (r.status == -EBADF && closes_handle(p.opcode)) return reply(p.unique, 0);
  if (r.status == -EBADF && handle_io(p.opcode)) return reply(p.unique, -EIO);
  if (r.status == -ENOENT && p.opcode == FUSE_LOOKUP && cfg_.entry_timeout_ms > 0) {
    // A negative entry, cached like a positive one: dom0 invalidates it here when another guest creates the name.
    fuse_entry_out e{};
    valid(cfg_.entry_timeout_ms, e.entry_valid, e.entry_valid_nsec);
    return reply(p.unique, 0, {{&e, sizeof e}});
  }
  if (r.status < 0) return reply(p.unique, r.status >= -4095 ? r.status : -EIO);
  const uint32_t len = std::min<uint32_t>(r.len, proto::kMaxData);
  switch (p.opcode) {
    case FUSE_LOOKUP:
    case FUSE_MKDIR:
    case FUSE_MKNOD:
    case FUSE_SYMLINK:
    case FUSE_LINK:
      return reply_entry(p, r);
    case FUSE_CREATE: {
      fusek::OpenOut o{};
      o.fh = r.fh;
      if (r.flags & proto::kRspBacking) {
        o.open_flags = fusek::kOpenPassthrough;
        o.backing_id = r.backing_id;
        c_.passthrough_opens++;
      } else {
        o.open_flags = FOPEN_DIRECT_IO;
        c_.direct_opens++;
      }
      return reply_entry(p, r, &o);
    }
    case FUSE_GETATTR:
    case FUSE_SETATTR: {
      fuse_attr_out o{};
      valid(attr_timeout(r), o.attr_valid, o.attr_valid_nsec);
      put_attr(o.attr, r.attr);
      return reply(p.unique, 0, {{&o, sizeof o}});
    }
    case FUSE_OPEN:
      return reply_open(p, r, false);
    case FUSE_OPENDIR:
      return reply_open(p, r, true);
    case FUSE_READ:
    case FUSE_READLINK:
      return reply(p.unique, 0, {{data, len}});
    case FUSE_WRITE: {
      fuse_write_out o{};
      o.size = r.len;
      return reply(p.unique, 0, {{&o, sizeof o}});
    }
    case FUSE_READDIR:
      return reply_readdir(p, r, data);
    case FUSE_GETLK: {
      fuse_lk_out o{};
      o.lk.start = r.lock.start;
      o.lk.end = r.lock.end;
      o.lk.type = r.lock.type;
      o.lk.pid = r.lock.pid;
      return reply(p.unique, 0, {{&o, sizeof o}});
    }
    case FUSE_STATFS: {
      fuse_statfs_out o{};
      o.st.blocks = r.statfs.blocks;
      o.st.bfree = r.statfs.bfree;
      o.st.bavail = r.statfs.bavail;
      o.st.files = r.statfs.files;
      o.st.ffree = r.statfs.ffree;
      o.st.bsize = r.statfs.bsize;
      o.st.namelen = r.statfs.namelen;
      o.st.frsize = r.statfs.frsize;
      return reply(p.unique, 0, {{&o, sizeof o}});
    }
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR: {
      if (p.size == 0) {
        fuse_getxattr_out o{};
        o.size = r.len;
        return reply(p.unique, 0, {{&o, sizeof o}});
      }
      return reply(p.unique, 0, {{data, std::min(len, p.size)}});
    }
    default:
      return reply(p.unique, 0);
  }
}

void FrontendLoop::reply_entry(const Pending& p, const proto::Response& r, const fusek::OpenOut* open) {
  if (r.node == 0) return reply(p.unique, -EIO);
  fuse_entry_out e{};
  e.nodeid = swap(r.node);
  e.generation = r.generation;
  valid(cfg_.entry_timeout_ms, e.entry_valid, e.entry_valid_nsec);
  valid(attr_timeout(r), e.attr_valid, e.attr_valid_nsec);
  put_attr(e.attr, r.attr);
  if (open) return reply(p.unique, 0, {{&e, sizeof e}, {const_cast<fusek::OpenOut*>(open), sizeof *open}});
  reply(p.unique, 0, {{&e, sizeof e}});
}

void FrontendLoop::reply_open(const Pending& p, const proto::Response& r, bool dir) {
  fusek::OpenOut o{};
  o.fh = r.fh;
  if (!dir) {
    if (r.flags & proto::kRspBacking) {
      o.open_flags = fusek::kOpenPassthrough;
      o.backing_id = r.backing_id;
      c_.passthrough_opens++;
    } else {
      // Without a backing file every byte goes through dom0, uncached, so other guests see writes at once.
      o.open_flags = FOPEN_DIRECT_IO;
      c_.direct_opens++;
    }
  }
  reply(p.unique, 0, {{&o, sizeof o}});
}

// XenFS readdir records and FUSE dirents are the same size (24-byte header, name padded to 8): rewrite in place.
void FrontendLoop::reply_readdir(const Pending& p, const proto::Response& r, uint8_t* data) {
  const size_t len = std::min<size_t>(r.len, proto::kMaxData);
  size_t off = 0;
  while (off + sizeof(proto::DirentHeader) <= len) {
    proto::DirentHeader d;
    std::memcpy(&d, data + off, sizeof d);
    size_t rec = (sizeof d + d.namelen + 7) & ~size_t{7};
    if (d.namelen == 0 || off + rec > len) break;
    fuse_dirent f{};
    f.ino = d.ino;
    f.off = d.next;
    f.namelen = d.namelen;
    f.type = d.type;
    std::memcpy(data + off, &f, sizeof d);  // the header only: the name stays where it is
    off += rec;
  }
  reply(p.unique, 0, {{data, off}});
}

void FrontendLoop::reply(uint64_t unique, int error, std::initializer_list<iovec> body) {
  fuse_out_header h{};
  h.error = error;
  h.unique = unique;
  iovec iov[4];
  iov[0] = {&h, sizeof h};
  size_t n = 1, total = sizeof h;
  if (error == 0) {
    for (const iovec& v : body) {
      if (n == 4) break;
      iov[n++] = v;
      total += v.iov_len;
    }
  }
  h.len = static_cast<uint32_t>(total);
  // ENOENT: the request was interrupted and the kernel no longer waits for it. Nothing else is expected; a
  // connection that is gone shows itself at the next read.
  while (writev(cfg_.fuse_fd, iov, static_cast<int>(n)) < 0 && errno == EINTR) {
  }
}

bool FrontendLoop::spin() {
  if (!link_ || link_->ring->outstanding() == 0 || cfg_.poll_us == 0) return false;
  auto deadline = Clock::now() + std::chrono::microseconds(cfg_.poll_us);
  do {
    for (int i = 0; i < 64; i++) {
      if (link_->ring->unconsumed_responses()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  } while (Clock::now() < deadline);
  return false;
}

void FrontendLoop::sleep() {
  // The canonical check: arm the event, look once more, and only sleep if nothing slipped in.
  if (link_ && link_->ring->outstanding() > 0 && link_->ring->final_check_for_responses()) return;
  pollfd fds[3];
  nfds_t n = 0;
  fds[n++] = {fe_.wake_fd_, POLLIN, 0};
  // A full ring (or a backlog of forgets) leaves requests in the kernel until responses free a slot.
  if (can_take_request()) fds[n++] = {cfg_.fuse_fd, POLLIN, 0};
  int rx_at = -1;
  if (link_) {
    rx_at = static_cast<int>(n);
    fds[n++] = {link_->rx, POLLIN, 0};
  }
  int timeout = -1;
  if (!held_.empty() && waiting_for_dom0()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        detached_at_ + std::chrono::milliseconds(cfg_.wait_ms) - Clock::now());
    timeout = static_cast<int>(std::max<int64_t>(left.count(), 0) + 1);
  }
  if (poll(fds, n, timeout) <= 0) return;
  if (fds[0].revents) evtchn_drain(fe_.wake_fd_);
  if (rx_at >= 0 && fds[rx_at].revents) evtchn_drain(link_->rx);
}

// ---- the JavaScript thread's side ----

FuseFrontend::FuseFrontend(const FrontendConfig& cfg, ExitFn on_exit) : cfg_(cfg), on_exit_(std::move(on_exit)) {}

int FuseFrontend::start(const FrontendConfig& cfg, ExitFn on_exit, std::unique_ptr<FuseFrontend>& out,
                        std::string& why) {
  if (cfg.max_write == 0 || cfg.max_write > proto::kMaxData) {
    why = "max_write must be 1.." + std::to_string(proto::kMaxData);
    return -EINVAL;
  }
  std::unique_ptr<FuseFrontend> fe(new FuseFrontend(cfg, std::move(on_exit)));
  fe->cfg_.fuse_fd = fcntl(cfg.fuse_fd, F_DUPFD_CLOEXEC, 3);
  if (fe->cfg_.fuse_fd < 0) {
    why = std::string("duplicating the /dev/fuse descriptor failed: ") + strerror(errno);
    return -errno;
  }
  fe->wake_fd_ = evtchn_create_fd();
  if (fe->wake_fd_ < 0) {
    close(fe->cfg_.fuse_fd);
    why = "eventfd failed";
    return fe->wake_fd_;
  }
  FuseFrontend* self = fe.get();
  fe->thread_ = std::thread([self] {
    FrontendLoop loop(*self);
    loop.run();
    if (self->on_exit_) self->on_exit_(loop.exit_err(), loop.exit_why());
  });
  out = std::move(fe);
  return 0;
}

FuseFrontend::~FuseFrontend() {
  stop();
  if (thread_.joinable()) thread_.join();
  if (cfg_.fuse_fd >= 0) close(cfg_.fuse_fd);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void FuseFrontend::wake() { evtchn_notify(wake_fd_); }

int FuseFrontend::attach(const RingLink& l, std::string& why) {
  const size_t bytes = size_t{l.mem_pages} * proto::kPageSize;
  const size_t data_end = (size_t{l.data_frame0} + size_t{l.slots} * proto::kMaxSegs) * proto::kPageSize;
  if (!ring_size_ok(l.slots) || l.slots > 256 || l.ring_offset % proto::kPageSize != 0 ||
      size_t{l.ring_offset} + ring_bytes(l.slots) > bytes || data_end > bytes || l.root == 0) {
    why = "the ring layout does not fit the memory";
    return -EINVAL;
  }
  auto link = std::make_unique<Link>();
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, l.mem_fd, 0);
  if (base == MAP_FAILED) {
    why = std::string("mapping the guest's memory failed: ") + strerror(errno);
    return -errno;
  }
  link->base = static_cast<uint8_t*>(base);
  link->bytes = bytes;
  link->rx = fcntl(l.rx_fd, F_DUPFD_CLOEXEC, 3);
  link->tx = fcntl(l.tx_fd, F_DUPFD_CLOEXEC, 3);
  if (link->rx < 0 || link->tx < 0) {
    why = std::string("duplicating the event channel failed: ") + strerror(errno);
    return -errno;
  }
  link->ring = std::make_unique<FrontRingCore>(link->base + l.ring_offset, l.slots);
  if (!link->ring->resume()) {
    why = "the ring has requests outstanding";
    return -EBUSY;
  }
  link->data0 = link->base + size_t{l.data_frame0} * proto::kPageSize;
  link->ref0 = l.data_ref0;
  link->slots = l.slots;
  link->root = l.root;
  {
    std::lock_guard<std::mutex> g(mu_);
    incoming_ = std::move(link);
    detach_requested_ = false;
  }
  wake();
  return 0;
}

void FuseFrontend::detach() {
  {
    std::lock_guard<std::mutex> g(mu_);
    incoming_.reset();
    detach_requested_ = true;
  }
  wake();
}

void FuseFrontend::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_requested_ = true;
  }
  wake();
}

FrontendStats FuseFrontend::stats() const {
  FrontendStats s;
  s.requests = counters_.requests;
  s.forwarded = counters_.forwarded;
  s.data_requests = counters_.data_requests;
  s.passthrough_opens = counters_.passthrough_opens;
  s.direct_opens = counters_.direct_opens;
  s.failed_disconnected = counters_.failed_disconnected;
  s.attaches = counters_.attaches;
  s.in_flight = counters_.in_flight;
  s.attached = counters_.attached;
  return s;
}

}  // namespace xenfs

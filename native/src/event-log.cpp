#include "event-log.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace xenfs {

namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

template <typename T>
void put(uint8_t* p, size_t at, T v) {
  std::memcpy(p + at, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof v);
  return v;
}

std::string segment_name(const std::string& dir, uint64_t first_seq) {
  char name[32];
  snprintf(name, sizeof name, "%020llu.xev", static_cast<unsigned long long>(first_seq));
  return dir + "/" + name;
}

[[noreturn]] void fail(const std::string& what, const std::string& file) {
  throw std::runtime_error("event log: " + what + " " + file + ": " + strerror(errno));
}

// The highest first-seq among the directory's segment files, 0 when there are none.
uint64_t last_segment(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) fail("cannot open", dir);
  uint64_t best = 0;
  while (dirent* e = readdir(d)) {
    const char* n = e->d_name;
    if (strlen(n) != 24 || strcmp(n + 20, ".xev") != 0) continue;
    char* end;
    unsigned long long v = strtoull(n, &end, 10);
    if (end == n + 20 && v > best) best = v;
  }
  closedir(d);
  return best;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < len; i++) crc = kCrcTable[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

EventLog::EventLog(const std::string& dir, uint64_t segment_bytes, uint32_t sync_interval_ms, Notify notify)
    : dir_(dir), segment_bytes_(segment_bytes), sync_interval_ms_(sync_interval_ms), notify_(std::move(notify)) {
  if (mkdir(dir_.c_str(), 0700) < 0 && errno != EEXIST) fail("cannot create", dir_);
  uint64_t seg = last_segment(dir_);
  if (seg == 0) {
    open_segment(1);
  } else {
    recover(seg);
  }
  synced_ = EventPosition{segment_, written_, next_seq_ - 1};
  sync_thread_ = std::thread([this] { sync_loop(); });
}

EventLog::~EventLog() { close(); }

void EventLog::open_segment(uint64_t first_seq) {
  std::string file = segment_name(dir_, first_seq);
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot create", file);
  // The segment's name is what the next seq is after a restart that finds it empty: it must reach the disk.
  int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
  fd_ = fd;
  segment_ = first_seq;
  written_ = 0;
  next_seq_ = first_seq;
}

// Reads the segment and keeps the longest prefix of whole, checksummed, consecutively numbered records.
void EventLog::recover(uint64_t first_seq) {
  std::string file = segment_name(dir_, first_seq);
  int fd = open(file.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0) fail("cannot open", file);
  struct stat st;
  if (fstat(fd, &st) < 0) fail("cannot stat", file);
  std::vector<uint8_t> buf(static_cast<size_t>(st.st_size));
  size_t have = 0;
  while (have < buf.size()) {
    ssize_t n = pread(fd, buf.data() + have, buf.size() - have, static_cast<off_t>(have));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  uint64_t seq = first_seq;
  size_t at = 0;
  while (at + kEventHeader <= have) {
    uint32_t len = get<uint32_t>(buf.data(), at);
    if (len < kEventHeader || at + len > have) break;
    if (crc32(buf.data() + at + 8, len - 8) != get<uint32_t>(buf.data(), at + 4)) break;
    if (get<uint64_t>(buf.data(), at + 8) != seq) break;
    seq++;
    at += len;
  }
  if (at < static_cast<size_t>(st.st_size) && ftruncate(fd, static_cast<off_t>(at)) < 0) fail("cannot truncate", file);
  fd_ = fd;
  segment_ = first_seq;
  written_ = at;
  next_seq_ = seq;
}

int64_t EventLog::append(const EventRecord& ev) {
  const std::string_view strs[4] = {ev.guest, ev.exp, ev.path, ev.old_path};
  size_t len = kEventHeader;
  for (auto s : strs) {
    if (s.size() > kEventMaxString) return -ENAMETOOLONG;
    len += s.size();
  }
  std::vector<uint8_t> rec(len);
  uint8_t* p = rec.data();
  const double now =
      std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
  put<uint32_t>(p, 0, static_cast<uint32_t>(len));
  put<double>(p, 16, now);
  p[24] = static_cast<uint8_t>(ev.kind);
  p[25] = static_cast<uint8_t>(ev.origin);
  p[26] = ev.dir ? 1 : 0;
  for (int i = 0; i < 4; i++) put<uint16_t>(p, 28 + 2 * i, static_cast<uint16_t>(strs[i].size()));
  put<uint64_t>(p, 40, ev.size);
  put<double>(p, 48, ev.mtime_ms);
  put<uint64_t>(p, 56, ev.ino);
  size_t at = kEventHeader;
  for (auto s : strs) {
    std::memcpy(p + at, s.data(), s.size());
    at += s.size();
  }
  std::lock_guard lock(mu_);
  if (closed_) return -ESHUTDOWN;
  if (broken_ || fd_ < 0) {
    failed_++;
    return -EIO;
  }
  const uint64_t seq = next_seq_;
  put<uint64_t>(p, 8, seq);
  put<uint32_t>(p, 4, crc32(p + 8, len - 8));
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd_, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A partial record would hide every later one from readers: cut it off and fail this append.
      int err = n < 0 ? errno : ENOSPC;
      if (ftruncate(fd_, static_cast<off_t>(written_)) < 0) broken_ = true;
      failed_++;
      return -err;
    }
    done += static_cast<size_t>(n);
  }
  written_ += len;
  next_seq_++;
  bool wake;
  {
    std::lock_guard sl(sync_mu_);
    wake = !dirty_;
    dirty_ = true;
  }
  // Only the first append since the last sync wakes the sync thread: waking it for every append would cost a
  // thread wake-up (tens of microseconds here) per guest call, while it sleeps out its group-commit interval.
  if (wake) sync_cv_.notify_one();
  return static_cast<int64_t>(seq);
}

// Readers move on to the next segment only once this one is whole on disk.
void EventLog::rotate() {
  fdatasync(fd_);
  ::close(fd_);
  fd_ = -1;
  try {
    open_segment(next_seq_);
  } catch (const std::exception&) {
    broken_ = true;
  }
}

EventPosition EventLog::position() {
  std::lock_guard lock(sync_mu_);
  return synced_;
}

void EventLog::sync_loop() {
  std::unique_lock lock(sync_mu_);
  for (;;) {
    sync_cv_.wait(lock, [this] { return dirty_ || stop_; });
    if (!stop_ && sync_interval_ms_ > 0) {
      // Group commit: the appends of the next few milliseconds share this fdatasync.
      sync_cv_.wait_for(lock, std::chrono::milliseconds(sync_interval_ms_), [this] { return stop_; });
    }
    const bool stopping = stop_;
    dirty_ = false;
    lock.unlock();
    EventPosition pos;
    int fd = -1;
    {
      std::lock_guard l(mu_);
      // Rotation happens here and not in append(): appends run as a guest's host identity, which may not create
      // files in dom0's state directory.
      if (written_ >= segment_bytes_ && fd_ >= 0) rotate();
      pos = EventPosition{segment_, written_, next_seq_ - 1};
      // A duplicate, so a rotation may close fd_ while this one syncs.
      if (fd_ >= 0) fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    }
    bool ok = true;
    if (fd >= 0) {
      ok = fdatasync(fd) == 0;
      ::close(fd);
    }
    lock.lock();
    if (ok) {
      bool advanced = pos.last_seq != synced_.last_seq;
      synced_ = pos;
      if (advanced && notify_) {
        lock.unlock();
        notify_();
        lock.lock();
      }
    }
    if (stopping && !dirty_) return;
  }
}

void EventLog::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
  }
  {
    std::lock_guard lock(sync_mu_);
    stop_ = true;
    dirty_ = true;  // one last sync
  }
  sync_cv_.notify_one();
  if (sync_thread_.joinable()) sync_thread_.join();
  std::lock_guard lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace xenfs

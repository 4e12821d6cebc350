#include "attached-fuse.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

#include "fuse-kernel.hpp"

namespace xenfs {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(AttachedFuse::Clock::now().time_since_epoch()).count();
}

// What the kernel answers a notification for a connection that can no longer take any: unmounted and aborted
// (ENODEV, ENOTCONN, ECONNABORTED) or not a live FUSE device at all (EBADF, EPERM). Anything else concerns that
// one note (ENOENT: the inode or name is not cached there, which is the common case) and the next may succeed.
bool fatal(int err) {
  return err == ENODEV || err == ENOTCONN || err == ECONNABORTED || err == EBADF || err == EPERM;
}

}  // namespace

std::shared_ptr<AttachedFuse> AttachedFuse::start(int fd, uint64_t root) {
  std::shared_ptr<AttachedFuse> conn;
  try {
    conn.reset(new AttachedFuse(fd, root));
    // Detached, holding its own reference: stop() must never wait for a write the guest's kernel may hold up
    // for as long as the guest likes. The thread closes the descriptor when it ends.
    std::thread([conn] { conn->run(); }).detach();
  } catch (const std::exception&) {
    ::close(fd);  // no thread runs to close it
    return nullptr;
  }
  return conn;
}

uint64_t AttachedFuse::post(std::vector<Note>& notes) {
  if (notes.empty()) return 0;
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || counters_.dead || queue_.size() + notes.size() > kMaxQueued) {
      counters_.dropped += notes.size();
      return 0;
    }
    for (auto& n : notes) queue_.push_back(std::move(n));
    ticket = posted_ += notes.size();
  }
  work_cv_.notify_one();
  return ticket;
}

bool AttachedFuse::wait(uint64_t ticket, Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return done_cv_.wait_until(lock, deadline, [&] { return done_ >= ticket || stopping_; });
}

bool AttachedFuse::stuck_for(Clock::duration limit) const {
  const int64_t since = writing_since_ns_.load(std::memory_order_relaxed);
  return since != 0 && now_ns() - since > std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
}

void AttachedFuse::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
}

AttachedFuse::Counters AttachedFuse::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void AttachedFuse::run() {
  for (;;) {
    Note note;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      note = std::move(queue_.front());
      queue_.pop_front();
      writing_since_ns_.store(now_ns(), std::memory_order_relaxed);
    }
    const int rc = write_note(note);
    {
      std::lock_guard lock(mu_);
      writing_since_ns_.store(0, std::memory_order_relaxed);
      ++done_;
      if (rc == 0) {
        ++counters_.written;
      } else if (!fatal(-rc)) {
        ++counters_.ignored;
      } else {
        counters_.dead = true;
        counters_.dropped += queue_.size();
        done_ += queue_.size();
        queue_.clear();
      }
    }
    done_cv_.notify_all();
  }
  std::lock_guard lock(mu_);
  counters_.dropped += queue_.size();
  queue_.clear();
  ::close(fd_);
}

int AttachedFuse::write_note(const Note& n) const {
  fuse_out_header out{};
  out.unique = 0;
  fuse_notify_inval_inode_out inode{};
  fuse_notify_inval_entry_out entry{};
  static const char nul = '\0';
  iovec iov[4];
  int cnt;
  if (n.name.empty()) {
    out.error = fusek::kNotifyInvalInode;
    inode.ino = fuse_id(n.node);
    inode.off = n.off;
    inode.len = 0;  // with off >= 0: to the end
    iov[1] = {&inode, sizeof inode};
    cnt = 2;
  } else {
    out.error = fusek::kNotifyInvalEntry;
    entry.parent = fuse_id(n.node);
    entry.namelen = static_cast<uint32_t>(n.name.size());
    iov[1] = {&entry, sizeof entry};
    iov[2] = {const_cast<char*>(n.name.data()), n.name.size()};
    iov[3] = {const_cast<char*>(&nul), 1};  // the kernel reads namelen + 1 bytes
    cnt = 4;
  }
  iov[0] = {&out, sizeof out};
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  out.len = static_cast<uint32_t>(total);
  for (;;) {
    ssize_t w = ::writev(fd_, iov, cnt);
    if (w >= 0) return static_cast<size_t>(w) == total ? 0 : -EIO;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace xenfs

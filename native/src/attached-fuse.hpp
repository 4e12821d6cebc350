// A guest's FUSE connection as dom0 holds it after `fuse-attach`: the descriptor, the id swap at the root the
// guest mounted, and a notifier thread of its own that writes invalidations to it.
//
// Why a thread per connection: writing FUSE_NOTIFY_INVAL_ENTRY takes the parent directory's inode lock in the
// guest's kernel, and that kernel may hold the lock while it waits for dom0 to answer one of the guest's own
// requests. A dom0 thread that wrote synchronously could wait for ever, and two guests changing one directory at
// once would each wait for the other (docs/native-frontend.md, "Coherent caching"). Notes are queued here and the
// changing call waits for them only up to a bound.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace xenfs {

class AttachedFuse {
 public:
  using Clock = std::chrono::steady_clock;

  // One notification, addressed by dom0 node id (fuse_id() translates): INVAL_ENTRY of `name` in directory `node`
  // when `name` is not empty, else INVAL_INODE of `node` from `off` (-1: attributes only, 0: and cached contents).
  struct Note {
    uint64_t node = 0;
    int64_t off = -1;
    std::string name;
    bool operator==(const Note&) const = default;
  };

  // Notes queued and not yet written, most; past it new notes are dropped and counted (a guest whose kernel never
  // lets go of a lock must not grow dom0 without end).
  static constexpr size_t kMaxQueued = 65536;

  // Takes ownership of `fd`, a checked /dev/fuse descriptor; `root` is the dom0 node the guest mounted as
  // FUSE_ROOT_ID. The notifier thread closes `fd` when it ends, after stop(). nullptr (fd closed) when no thread
  // could be started.
  static std::shared_ptr<AttachedFuse> start(int fd, uint64_t root);
  AttachedFuse(const AttachedFuse&) = delete;
  AttachedFuse& operator=(const AttachedFuse&) = delete;

  // The descriptor, for the owner's own ioctls (backing files); valid until the owner calls stop().
  int fd() const { return fd_; }
  uint64_t root() const { return root_; }
  // The guest's FUSE node id for a dom0 node: the mounted root is FUSE_ROOT_ID (1) and dom0's node 1 takes its
  // number; every other id is the same on both sides.
  uint64_t fuse_id(uint64_t node) const { return node == root_ ? 1 : node == 1 ? root_ : node; }

  // Queues `notes` in order. Returns the ticket wait() takes, or 0 when nothing was queued (the connection is dead
  // or the queue full).
  uint64_t post(std::vector<Note>& notes);
  // True once every note up to `ticket` has been written (or given up on); false when `deadline` came first.
  bool wait(uint64_t ticket, Clock::time_point deadline);
  // The notifier has been inside one write for longer than `limit`: the guest's kernel is holding a lock it needs.
  bool stuck_for(Clock::duration limit) const;
  // The owning session is waiting for notifications of its own to reach other guests. A request of this guest
  // is held up in dom0 meanwhile, and so is any lock its kernel holds for it: a notifier stuck on such a lock
  // waits for the owner, and a changer waiting for that notifier would close a cycle.
  void owner_waiting(bool on) { owner_waits_.fetch_add(on ? 1 : -1, std::memory_order_relaxed); }
  bool stuck_behind_owner(Clock::duration limit) const {
    return owner_waits_.load(std::memory_order_relaxed) > 0 && stuck_for(limit);
  }
  // No more notes are written; the thread ends after the write it may be blocked in and closes the descriptor.
  // Idempotent.
  void stop();

  struct Counters {
    uint64_t written = 0;  // accepted by the kernel
    uint64_t ignored = 0;  // refused harmlessly: the guest's kernel does not cache that inode or name (ENOENT)
    uint64_t dropped = 0;  // never written: queue full, or the connection died first
    bool dead = false;     // the connection is gone (ENODEV and the like): nothing more is written to it
  };
  Counters counters() const;

 private:
  AttachedFuse(int fd, uint64_t root) : fd_(fd), root_(root) {}
  void run();
  int write_note(const Note& n) const;  // 0 or -errno

  const int fd_;
  const uint64_t root_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // notes queued, or stop()
  std::condition_variable done_cv_;  // a note written
  std::deque<Note> queue_;
  uint64_t posted_ = 0;  // notes ever queued; a ticket is the value after its notes
  uint64_t done_ = 0;    // notes written or given up on, in order
  bool stopping_ = false;
  Counters counters_;
  std::atomic<int64_t> writing_since_ns_{0};  // steady clock; 0 while not inside a write
  std::atomic<int> owner_waits_{0};
};

}  // namespace xenfs

// dom0's one table of file locks, for every guest at once: a lock one guest takes is seen and enforced in every
// other guest that shares the file. It holds POSIX byte-range locks (fcntl's, and OFD locks, whose owner a guest
// names after the open file) and flock(2) locks: two namespaces that never conflict with each other, as on Linux.
// A request that has to wait stays here and holds no thread; whoever releases what it waits for grants it and
// calls its completion. Thread-safe. The table never dereferences a session: it is only an identity.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "protocol.hpp"

namespace xenfs {

// The file a lock is on. A lock belongs to the inode, not to a guest's node of it (nodes are per export and per
// session, and two guests reach one file through nodes of their own).
struct LockKey {
  uint64_t dev = 0, ino = 0;
  bool operator==(const LockKey&) const = default;
};

// Who holds a lock: a session and the lock owner its guest chose (FUSE's lock_owner, opaque to dom0).
struct LockOwner {
  const void* session = nullptr;
  uint64_t id = 0;
  bool operator==(const LockOwner&) const = default;
};

enum class LockKind : uint8_t { kPosix, kFlock };

// One lock request, already checked by the caller: type is proto::kLockRead, kLockWrite or kLockUnlock, and
// start <= end <= proto::kOffsetMax (a flock lock always spans the whole file).
struct LockSpec {
  LockKey key;
  LockOwner owner;
  uint64_t fh = 0;  // the handle it is taken through: RELEASE of that handle drops it
  LockKind kind = LockKind::kPosix;
  uint64_t start = 0, end = proto::kOffsetMax;
  uint32_t type = proto::kLockUnlock;
  uint32_t pid = 0;
};

// Per-session caps (-ENOLCK beyond): lock records held, where a range split in two by an unlock counts twice, and
// requests waiting.
struct LockCaps {
  uint32_t max_locks = 4096;
  uint32_t max_waiters = 256;
};

// Answers a waiting request: 0 when granted, else -errno. Called once, on whichever thread settled the wait,
// without the table's mutex held; never called for a session that drop_session() removed.
using LockDone = std::function<void(int status)>;

class LockTable {
 public:
  static constexpr int kPending = 1;  // set(): the request waits, and its LockDone will answer it

  static LockTable& shared();

  // The first lock of another owner that `spec` conflicts with, in `out` (type kLockUnlock when none). Its pid is
  // given only when the holder is the asking session: another guest's pid means nothing to this one (0).
  void get(const LockSpec& spec, proto::FileLock& out);
  // Sets, converts or removes the owner's lock. 0 when granted; -EAGAIN when it conflicts and `wait` is false;
  // kPending when it conflicts and `wait` is true (`done` answers it later); -ENOLCK past a cap; -EDEADLK when
  // waiting would close a cycle of POSIX owners each waiting for the next.
  int set(const LockSpec& spec, const LockCaps& caps, bool wait, uint64_t req_id, LockDone done);
  // Ends the session's waiting request `req_id` with -EINTR; false when no such request waits.
  bool interrupt(const void* session, uint64_t req_id);
  // Drops every lock of `kind` that `owner` holds on the file (FLUSH: POSIX locks; RELEASE: flock locks).
  void drop_owner(const LockKey& key, const LockOwner& owner, LockKind kind);
  // Drops every lock the session took through `fh` on the file; its requests waiting through it end with -EBADF.
  void drop_handle(const LockKey& key, const void* session, uint64_t fh);
  // The session ended: every lock it holds goes, and its waiting requests go unanswered.
  void drop_session(const void* session);
  // Whether the session holds or waits for anything: a cheap test before a FLUSH or RELEASE looks further.
  bool involves(const void* session);

 private:
  struct Lock {
    LockOwner owner;
    uint64_t fh;
    uint64_t start, end;
    uint32_t type, pid;
  };
  struct Waiter {
    LockSpec spec;
    LockCaps caps;
    uint64_t req_id;
    LockDone done;
    int status = 0;  // what `done` will be told, once settled
  };
  struct File {
    std::vector<Lock> posix, flock;
    std::list<Waiter> waiters;  // oldest first
    bool empty() const { return posix.empty() && flock.empty() && waiters.empty(); }
  };
  struct KeyHash {
    size_t operator()(const LockKey& k) const noexcept;
  };
  struct Usage {
    uint32_t locks = 0, waiters = 0;
  };
  // Waiters taken out of the table, answered once the mutex is released.
  using Settled = std::list<Waiter>;

  LockTable() = default;
  int set_locked(const LockSpec& spec, const LockCaps& caps, bool wait, uint64_t req_id, LockDone& done,
                 Settled& settled);
  int apply(File& f, const LockSpec& spec, const LockCaps& caps);
  void wake(File& f, Settled& settled);
  void settle(File& f, std::list<Waiter>::iterator it, int status, Settled& settled);
  // Drops the locks of one kind that `gone` selects, and wakes whoever that lets through.
  template <class Pred>
  void drop_locks(File& f, std::vector<Lock>& locks, Pred gone);
  bool deadlocks(const LockOwner& asking, LockOwner blocker) const;
  void tidy(const LockKey& key);
  void release(const void* session, uint32_t locks, uint32_t waiters);
  static void answer(Settled& settled);

  std::mutex mu_;
  std::unordered_map<LockKey, File, KeyHash> files_;
  std::unordered_map<const void*, Usage> usage_;  // sessions holding or waiting for anything
};

}  // namespace xenfs

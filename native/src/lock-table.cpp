#include "lock-table.hpp"

#include <algorithm>
#include <cerrno>
#include <new>

namespace xenfs {

namespace {

using proto::kLockUnlock;
using proto::kLockWrite;

// Linux's bound on the chain it follows in posix_locks_deadlock(); a longer cycle goes undetected there too.
constexpr int kMaxDeadlockSteps = 10;

template <class L>
bool overlaps(const L& l, uint64_t start, uint64_t end) {
  return l.start <= end && start <= l.end;
}

// Overlapping or adjacent. Every end is at most kOffsetMax, so end + 1 never wraps.
template <class L>
bool touches(const L& l, uint64_t start, uint64_t end) {
  return l.start <= end + 1 && start <= l.end + 1;
}

}  // namespace

size_t LockTable::KeyHash::operator()(const LockKey& k) const noexcept {
  uint64_t h = k.ino * 0x9e3779b97f4a7c15ull ^ k.dev * 0xc2b2ae3d27d4eb4full;
  return static_cast<size_t>(h ^ (h >> 31));
}

LockTable& LockTable::shared() {
  // Leaked on purpose, as the worker pool is: a session may still be stopping while the process exits.
  static LockTable* table = new LockTable();
  return *table;
}

namespace {

struct Conflicts {
  const LockSpec& spec;
  template <class L>
  bool operator()(const L& l) const {
    if (l.owner == spec.owner || (l.type != kLockWrite && spec.type != kLockWrite)) return false;
    return spec.kind == LockKind::kFlock || overlaps(l, spec.start, spec.end);
  }
};

template <class File>
auto& locks_of(File& f, LockKind kind) {
  return kind == LockKind::kFlock ? f.flock : f.posix;
}

template <class File>
auto first_conflict(File& f, const LockSpec& spec) -> decltype(&f.posix[0]) {
  if (spec.type == kLockUnlock) return nullptr;
  auto& locks = locks_of(f, spec.kind);
  auto it = std::find_if(locks.begin(), locks.end(), Conflicts{spec});
  return it == locks.end() ? nullptr : &*it;
}

template <class Locks>
int64_t owned_by(const Locks& locks, const void* session) {
  return std::count_if(locks.begin(), locks.end(), [&](const auto& l) { return l.owner.session == session; });
}

// The owner's POSIX ranges once `s` is applied: what it held outside [start, end] stays (split where needed); what
// it held of the same type through the same handle, over or next to the new range, merges into it. Sorted by start.
template <class Lock>
std::vector<Lock> posix_after(const std::vector<Lock>& locks, const LockSpec& s) {
  uint64_t start = s.start, end = s.end;
  if (s.type != kLockUnlock) {
    for (bool grown = true; grown;) {
      grown = false;
      for (const Lock& l : locks) {
        if (!(l.owner == s.owner) || l.fh != s.fh || l.type != s.type || !touches(l, start, end)) continue;
        if (l.start >= start && l.end <= end) continue;
        start = std::min(start, l.start);
        end = std::max(end, l.end);
        grown = true;
      }
    }
  }
  std::vector<Lock> out;
  out.reserve(locks.size() + 2);
  for (const Lock& l : locks) {
    if (!(l.owner == s.owner) || !overlaps(l, start, end)) {
      out.push_back(l);
      continue;
    }
    if (l.start < start) out.push_back(Lock{l.owner, l.fh, l.start, start - 1, l.type, l.pid});
    if (l.end > end) out.push_back(Lock{l.owner, l.fh, end + 1, l.end, l.type, l.pid});
  }
  if (s.type != kLockUnlock) out.push_back(Lock{s.owner, s.fh, start, end, s.type, s.pid});
  std::sort(out.begin(), out.end(), [](const Lock& a, const Lock& b) { return a.start < b.start; });
  return out;
}

// The flock locks once `s` is applied: one whole-file lock per owner, converted in place.
template <class Lock>
std::vector<Lock> flock_after(const std::vector<Lock>& locks, const LockSpec& s) {
  std::vector<Lock> out;
  out.reserve(locks.size() + 1);
  for (const Lock& l : locks)
    if (!(l.owner == s.owner)) out.push_back(l);
  if (s.type != kLockUnlock) out.push_back(Lock{s.owner, s.fh, 0, proto::kOffsetMax, s.type, s.pid});
  return out;
}

}  // namespace

void LockTable::get(const LockSpec& spec, proto::FileLock& out) {
  out = proto::FileLock{0, 0, kLockUnlock, 0};
  std::lock_guard lock(mu_);
  auto it = files_.find(spec.key);
  if (it == files_.end()) return;
  const Lock* l = first_conflict(it->second, spec);
  if (!l) return;
  out = proto::FileLock{l->start, l->end, l->type, l->owner.session == spec.owner.session ? l->pid : 0};
}

int LockTable::set(const LockSpec& spec, const LockCaps& caps, bool wait, uint64_t req_id, LockDone done) {
  Settled settled;
  int rc;
  {
    std::lock_guard lock(mu_);
    try {
      rc = set_locked(spec, caps, wait, req_id, done, settled);
    } catch (const std::bad_alloc&) {
      rc = -ENOLCK;  // every change is built aside and committed last, so nothing was half done
    }
    tidy(spec.key);
  }
  answer(settled);
  return rc;
}

int LockTable::set_locked(const LockSpec& spec, const LockCaps& caps, bool wait, uint64_t req_id, LockDone& done,
                          Settled& settled) {
  File& f = files_[spec.key];
  const Lock* blocker = first_conflict(f, spec);
  if (!blocker) {
    int rc = apply(f, spec, caps);
    // Anything set may have given something up: an unlock, a split, a write lock turned into a read lock.
    if (rc == 0) wake(f, settled);
    return rc;
  }
  const LockOwner blocked_by = blocker->owner;  // copied: the flock path below may move what it points at
  if (spec.kind == LockKind::kFlock) {
    // As Linux: converting a flock lock is not atomic. One that cannot be granted at once loses the old lock
    // first, so two holders of a shared lock both asking for an exclusive one do not wait for each other forever.
    drop_locks(f, f.flock, [&](const Lock& l) { return l.owner == spec.owner; });
    wake(f, settled);
  }
  if (!wait) return -EAGAIN;
  if (spec.kind == LockKind::kPosix && deadlocks(spec.owner, blocked_by)) return -EDEADLK;
  Usage& u = usage_[spec.owner.session];  // made before the waiter, so a waiter is never left uncounted
  if (u.waiters >= caps.max_waiters) {
    release(spec.owner.session, 0, 0);
    return -ENOLCK;
  }
  f.waiters.push_back(Waiter{spec, caps, req_id, std::move(done)});
  u.waiters++;
  return kPending;
}

// Commits `spec` to the file's locks, within the owner's session's cap.
int LockTable::apply(File& f, const LockSpec& spec, const LockCaps& caps) {
  auto& locks = locks_of(f, spec.kind);
  std::vector<Lock> next = spec.kind == LockKind::kFlock ? flock_after(locks, spec) : posix_after(locks, spec);
  const void* session = spec.owner.session;
  const int64_t grows = owned_by(next, session) - owned_by(locks, session);
  if (grows > 0) {
    Usage& u = usage_[session];
    if (u.locks + grows > caps.max_locks) {
      release(session, 0, 0);
      return -ENOLCK;
    }
    u.locks += static_cast<uint32_t>(grows);
  }
  locks.swap(next);
  if (grows < 0) release(session, static_cast<uint32_t>(-grows), 0);
  return 0;
}

// Grants, oldest first, every waiter nothing blocks any more; a grant can let others through (a conversion gives
// up ranges), so it goes round until a pass grants nothing.
void LockTable::wake(File& f, Settled& settled) {
  for (bool granted = true; granted;) {
    granted = false;
    for (auto it = f.waiters.begin(); it != f.waiters.end();) {
      auto next = std::next(it);
      if (!first_conflict(f, it->spec)) {
        int rc;
        try {
          rc = apply(f, it->spec, it->caps);
        } catch (const std::bad_alloc&) {
          rc = -ENOLCK;
        }
        settle(f, it, rc, settled);
        granted = true;
      }
      it = next;
    }
  }
}

// Takes a waiter out of the table, to be told `status` once the mutex is released. Never allocates.
void LockTable::settle(File& f, std::list<Waiter>::iterator it, int status, Settled& settled) {
  it->status = status;
  release(it->spec.owner.session, 0, 1);
  settled.splice(settled.end(), f.waiters, it);
}

template <class Pred>
void LockTable::drop_locks(File& f, std::vector<Lock>& locks, Pred gone) {
  auto from = std::stable_partition(locks.begin(), locks.end(), [&](const Lock& l) { return !gone(l); });
  for (auto it = from; it != locks.end(); ++it) release(it->owner.session, 1, 0);
  locks.erase(from, locks.end());
}

bool LockTable::interrupt(const void* session, uint64_t req_id) {
  Settled settled;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, f] : files_) {
      auto it = std::find_if(f.waiters.begin(), f.waiters.end(), [&](const Waiter& w) {
        return w.spec.owner.session == session && w.req_id == req_id;
      });
      if (it == f.waiters.end()) continue;
      settle(f, it, -EINTR, settled);
      const LockKey gone = key;  // tidy() may erase the entry `key` lives in
      tidy(gone);
      break;
    }
  }
  answer(settled);
  return !settled.empty();
}

void LockTable::drop_owner(const LockKey& key, const LockOwner& owner, LockKind kind) {
  Settled settled;
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(key);
    if (it == files_.end()) return;
    File& f = it->second;
    drop_locks(f, locks_of(f, kind), [&](const Lock& l) { return l.owner == owner; });
    wake(f, settled);
    tidy(key);
  }
  answer(settled);
}

void LockTable::drop_handle(const LockKey& key, const void* session, uint64_t fh) {
  Settled settled;
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(key);
    if (it == files_.end()) return;
    File& f = it->second;
    auto through = [&](const Lock& l) { return l.owner.session == session && l.fh == fh; };
    drop_locks(f, f.posix, through);
    drop_locks(f, f.flock, through);
    for (auto w = f.waiters.begin(); w != f.waiters.end();) {
      auto next = std::next(w);
      if (w->spec.owner.session == session && w->spec.fh == fh) settle(f, w, -EBADF, settled);
      w = next;
    }
    wake(f, settled);
    tidy(key);
  }
  answer(settled);
}

void LockTable::drop_session(const void* session) {
  Settled settled, abandoned;  // abandoned: destroyed unanswered, after the mutex is released
  {
    std::lock_guard lock(mu_);
    if (!usage_.count(session)) return;
    auto mine = [&](const Lock& l) { return l.owner.session == session; };
    for (auto it = files_.begin(); it != files_.end();) {
      File& f = it->second;
      drop_locks(f, f.posix, mine);
      drop_locks(f, f.flock, mine);
      for (auto w = f.waiters.begin(); w != f.waiters.end();) {
        auto next = std::next(w);
        if (w->spec.owner.session == session) abandoned.splice(abandoned.end(), f.waiters, w);
        w = next;
      }
      wake(f, settled);
      it = f.empty() ? files_.erase(it) : std::next(it);
    }
    usage_.erase(session);
  }
  answer(settled);
}

bool LockTable::involves(const void* session) {
  std::lock_guard lock(mu_);
  return usage_.count(session) != 0;
}

// Linux's posix_locks_deadlock(): follow what the blocker's owner is itself waiting for; reaching the asking
// owner again means waiting would never end.
bool LockTable::deadlocks(const LockOwner& asking, LockOwner blocker) const {
  for (int step = 0; step < kMaxDeadlockSteps; ++step) {
    if (blocker == asking) return true;
    const Lock* next = nullptr;
    for (const auto& [key, f] : files_) {
      for (const Waiter& w : f.waiters) {
        if (w.spec.kind != LockKind::kPosix || !(w.spec.owner == blocker)) continue;
        next = first_conflict(f, w.spec);
        break;
      }
      if (next) break;
    }
    if (!next) return false;
    blocker = next->owner;
  }
  return false;
}

void LockTable::tidy(const LockKey& key) {
  auto it = files_.find(key);
  if (it != files_.end() && it->second.empty()) files_.erase(it);
}

// A session left holding and waiting for nothing keeps no entry, so involves() stays one lookup. Never allocates.
void LockTable::release(const void* session, uint32_t locks, uint32_t waiters) {
  auto it = usage_.find(session);
  if (it == usage_.end()) return;
  it->second.locks -= locks;
  it->second.waiters -= waiters;
  if (it->second.locks == 0 && it->second.waiters == 0) usage_.erase(it);
}

void LockTable::answer(Settled& settled) {
  for (Waiter& w : settled)
    if (w.done) w.done(w.status);
}

}  // namespace xenfs

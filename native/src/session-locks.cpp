// Session, file locks: GETLK, SETLK and INTERRUPT against the server-wide LockTable, the locks a FLUSH or RELEASE
// lets go of, and the answer to a lock request that waited. The rules are in docs/protocol.md ("File locks").
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lock-table.hpp"
#include "session.hpp"
#include "worker-pool.hpp"

namespace xenfs {

namespace {

// Decodes and checks a GETLK/SETLK request into `s` (everything but the file and the handle). 0 or -EINVAL.
int lock_spec(const proto::Request& req, LockSpec& s) {
  const bool getlk = req.op == proto::kGetlk;
  const uint32_t known = getlk ? proto::kLkFlock : proto::kLkFlock | proto::kLkWait;
  if (req.arg32a & ~known) return -EINVAL;
  // The engine checked the payload is kLockPayload bytes; inline, it is already in dom0's copy of the slot.
  if (req.flags & proto::kFlagPayloadExt) return -EINVAL;
  proto::FileLock fl;
  std::memcpy(&fl, req.inline_data, sizeof fl);
  if (fl.type > proto::kLockUnlock || (getlk && fl.type == proto::kLockUnlock)) return -EINVAL;
  s.kind = (req.arg32a & proto::kLkFlock) ? LockKind::kFlock : LockKind::kPosix;
  s.type = fl.type;
  s.pid = fl.pid;
  if (s.kind == LockKind::kFlock) return 0;  // always the whole file, whatever range came with it
  // Past the largest offset there is nothing to lock: an end there means "to the end of the file".
  s.start = fl.start;
  s.end = std::min<uint64_t>(fl.end, proto::kOffsetMax);
  return s.start > s.end ? -EINVAL : 0;
}

}  // namespace

bool Session::serve_locks(const proto::Request& req) {
  switch (req.op) {
    case proto::kGetlk:
    case proto::kSetlk:
    case proto::kInterrupt:
      break;
    case proto::kFlush:
    case proto::kRelease:
      drop_released_locks(req);
      return false;
    default:
      return false;
  }
  proto::Response rsp{};
  rsp.id = req.id;
  const int rc = lock_op(req, rsp);
  if (rc == LockTable::kPending) return true;
  if (rc < 0) {
    answer_error(req, rc);
    return true;
  }
  respond(rsp, nullptr, 0);
  return true;
}

int Session::lock_op(const proto::Request& req, proto::Response& rsp) {
  LockTable& table = LockTable::shared();
  if (req.op == proto::kInterrupt) return table.interrupt(this, req.arg64) ? 0 : -ENOENT;
  LockSpec s;
  if (int e = lock_spec(req, s)) return e;
  LockTarget t;
  if (int e = backend_->lock_target(req.fh, t)) return e;
  // As fcntl: a write lock needs a handle open for writing, a read lock one open for reading. flock(2) asks
  // nothing of the open mode.
  if (req.op == proto::kSetlk && s.kind == LockKind::kPosix) {
    if ((s.type == proto::kLockWrite && !t.writable) || (s.type == proto::kLockRead && !t.readable)) return -EBADF;
  }
  s.key = LockKey{t.dev, t.ino};
  s.owner = LockOwner{this, req.arg64};
  s.fh = req.fh;
  if (req.op == proto::kGetlk) {
    table.get(s, rsp.lock);
    return 0;
  }
  const bool wait = req.arg32a & proto::kLkWait;
  // Weak: a wait must not keep a departed guest's session alive (drop_session removes it anyway).
  auto done = [self = weak_from_this(), id = req.id](int status) {
    if (auto session = self.lock()) session->complete_later(id, status);
  };
  return table.set(s, limits_.locks, wait, req.id, done);
}

// Before the request runs, while its handle still names the file: FLUSH drops the POSIX locks of its lock owner
// (a FUSE kernel keeps none itself and relies on this at close()); RELEASE drops every lock taken through the
// handle, and with kReleaseFlockUnlock the flock locks of its lock owner. An unknown handle drops nothing here,
// and the request itself answers -EBADF.
void Session::drop_released_locks(const proto::Request& req) {
  LockTable& table = LockTable::shared();
  if (req.op == proto::kFlush && req.arg64 == 0) return;
  if (!table.involves(this)) return;  // the common case: no fstat for a guest that holds no lock
  LockTarget t;
  if (backend_->lock_target(req.fh, t) < 0) return;
  const LockKey key{t.dev, t.ino};
  if (req.op == proto::kFlush) return table.drop_owner(key, LockOwner{this, req.arg64}, LockKind::kPosix);
  table.drop_handle(key, this, req.fh);
  // Other bits of a RELEASE's arg32a are ignored, not refused: a release must never leave a handle open.
  if (req.arg32a & proto::kReleaseFlockUnlock) table.drop_owner(key, LockOwner{this, req.arg64}, LockKind::kFlock);
}

void Session::complete_later(uint64_t id, int status) {
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    if (stopped_) return;
    // Counted as pool work, so stop() waits for the answer to be written before the transport goes.
    pool_tasks_++;
  }
  auto leave = [](Session& s) {
    std::lock_guard<std::mutex> lock(s.flight_mu_);
    s.pool_tasks_--;
    s.flight_cv_.notify_all();
  };
  try {
    WorkerPool::shared().submit([self = shared_from_this(), id, status, leave] {
      proto::Response rsp{};
      rsp.id = id;
      rsp.status = status;
      if (status < 0) self->stats_.errors++;
      self->respond(rsp, nullptr, 0);
      leave(*self);
    });
  } catch (...) {
    leave(*this);
  }
}

}  // namespace xenfs

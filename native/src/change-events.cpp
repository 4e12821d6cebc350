#include "change-events.hpp"

#include <fcntl.h>

#include <cerrno>

namespace xenfs {

namespace {

double ms(const timespec& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6; }

bool same(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

std::string join(const std::string& dir, std::string_view name) {
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out = dir;
  if (!out.empty()) out += '/';
  out += name;
  return out;
}

}  // namespace

ChangeEvents::ChangeEvents(FileBackend& backend, EventSource source) : backend_(backend), source_(std::move(source)) {}

uint64_t ChangeEvents::lost() const { return source_.log ? source_.log->failed() : 0; }

void ChangeEvents::emit(EventKind kind, uint32_t exp, const std::string& path, const std::string& old, bool dir,
                        uint64_t size, double mtime_ms, uint64_t ino) {
  if (exp >= source_.exports.size()) return;
  EventRecord r;
  r.kind = kind;
  r.origin = EventOrigin::kGuest;
  r.dir = dir;
  r.guest = source_.guest;
  r.exp = source_.exports[exp];
  r.path = path;
  r.old_path = old;
  r.size = size;
  r.mtime_ms = mtime_ms;
  r.ino = ino;
  // A failed append is counted by the log (lost()); the guest's call has happened and its reply stands.
  source_.log->append(r);
}

bool ChangeEvents::dir_path(uint64_t dir, std::string_view name, uint32_t& exp, std::string& path) {
  struct stat st;
  std::string parent;
  if (backend_.node_location(dir, exp, parent, st) < 0) return false;
  path = join(parent, name);
  return true;
}

void ChangeEvents::entry(EventKind kind, uint64_t dir, std::string_view name, const struct stat* st,
                         const Victim* v) {
  uint32_t exp;
  std::string path;
  if (!dir_path(dir, name, exp, path)) return;
  if (st) {
    emit(kind, exp, path, {}, S_ISDIR(st->st_mode), static_cast<uint64_t>(st->st_size), ms(st->st_mtim),
         static_cast<uint64_t>(st->st_ino));
  } else if (v) {
    emit(kind, exp, path, {}, v->dir, v->size, v->mtime_ms, v->ino);
  }
}

void ChangeEvents::node_event(EventKind kind, uint64_t node) {
  uint32_t exp;
  std::string path;
  struct stat st;
  if (backend_.node_location(node, exp, path, st) < 0) return;
  emit(kind, exp, path, {}, S_ISDIR(st.st_mode), static_cast<uint64_t>(st.st_size), ms(st.st_mtim),
       static_cast<uint64_t>(st.st_ino));
}

void ChangeEvents::renamed(const Call& c, const std::optional<Victim> (&victims)[2]) {
  const proto::Request& q = c.req;
  uint32_t from_exp, to_exp;
  std::string from, to;
  if (!dir_path(q.node, c.name1, from_exp, from) || !dir_path(q.arg64, c.name2, to_exp, to)) return;
  if (from_exp != to_exp) return;  // the backend refuses renames across exports (EXDEV)
  if (q.arg32a & RENAME_EXCHANGE) {
    // Both names now hold what the other held. Two `renamed` events would each overwrite the other's target in
    // a consumer applying them in order, so each path is reported as replaced instead.
    for (int i = 0; i < 2; i++) {
      const auto& was = victims[i];
      const auto& now = victims[1 - i];
      if (!was || !now) continue;
      const std::string& p = i == 0 ? from : to;
      emit(was->dir ? EventKind::kDirDeleted : EventKind::kDeleted, from_exp, p, {}, was->dir, was->size, was->mtime_ms,
           was->ino);
      emit(now->dir ? EventKind::kDirCreated : EventKind::kCreated, from_exp, p, {}, now->dir, now->size, now->mtime_ms,
           now->ino);
    }
    return;
  }
  const auto& moved = victims[0];
  if (!moved) return;
  emit(EventKind::kRenamed, from_exp, to, from, moved->dir, moved->size, moved->mtime_ms, moved->ino);
}

void ChangeEvents::opened(uint64_t fh, bool truncated) {
  uint32_t exp;
  std::string path;
  struct stat st;
  if (backend_.handle_location(fh, exp, path, st) < 0) return;
  std::lock_guard lock(mu_);
  writers_[fh] = Writer{static_cast<uint64_t>(st.st_size), st.st_mtim, st.st_ctim, truncated};
}

void ChangeEvents::written(uint64_t fh) {
  std::lock_guard lock(mu_);
  auto it = writers_.find(fh);
  if (it != writers_.end()) it->second.dirty = true;
}

// The file's size and mtime are compared with what was last reported, so a passthrough handle's writes (never
// seen by dom0) are noticed too; a chmod meanwhile changes neither and gets its own `metadata` event.
void ChangeEvents::closed(uint64_t fh, bool release) {
  Writer w;
  {
    std::lock_guard lock(mu_);
    auto it = writers_.find(fh);
    if (it == writers_.end()) return;
    w = it->second;
    if (release) writers_.erase(it);
  }
  uint32_t exp;
  std::string path;
  struct stat st;
  if (backend_.handle_location(fh, exp, path, st) < 0) return;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!w.dirty && size == w.size && same(st.st_mtim, w.mtime)) return;
  if (!release) {
    std::lock_guard lock(mu_);
    auto it = writers_.find(fh);
    if (it != writers_.end()) it->second = Writer{size, st.st_mtim, st.st_ctim, false};
  }
  emit(EventKind::kModified, exp, path, {}, false, size, ms(st.st_mtim), static_cast<uint64_t>(st.st_ino));
}

void ChangeEvents::after(const Call& c, const proto::Response& rsp, const std::optional<Victim> (&victims)[2]) {
  const proto::Request& q = c.req;
  struct stat st {};
  auto from_attr = [&]() -> const struct stat* {
    st.st_mode = rsp.attr.mode;
    st.st_size = static_cast<off_t>(rsp.attr.size);
    st.st_mtim = timespec{static_cast<time_t>(rsp.attr.mtime_s), static_cast<long>(rsp.attr.mtime_ns)};
    st.st_ino = static_cast<ino_t>(rsp.attr.ino);
    return &st;
  };
  switch (q.op) {
    case proto::kCreate:
      entry(EventKind::kCreated, q.node, c.name1, from_attr(), nullptr);
      opened(rsp.fh, false);
      break;
    case proto::kMknod:
    case proto::kSymlink:
    case proto::kLink:
      entry(EventKind::kCreated, q.node, c.name1, from_attr(), nullptr);
      break;
    case proto::kMkdir:
      entry(EventKind::kDirCreated, q.node, c.name1, from_attr(), nullptr);
      break;
    case proto::kUnlink:
      if (victims[0]) entry(EventKind::kDeleted, q.node, c.name1, nullptr, &*victims[0]);
      break;
    case proto::kRmdir:
      if (victims[0]) entry(EventKind::kDirDeleted, q.node, c.name1, nullptr, &*victims[0]);
      break;
    case proto::kRename:
      renamed(c, victims);
      break;
    case proto::kSetattr: {
      const bool size = q.arg32a & proto::kSetSize;
      const bool other = q.arg32a & ~proto::kSetSize;
      if (size && q.fh != 0) written(q.fh);  // coalesced into the handle's close, like its writes
      if (size && q.fh == 0) node_event(EventKind::kModified, q.node);
      if (other && q.fh == 0) node_event(EventKind::kMetadata, q.node);
      if (other && q.fh != 0) {
        uint32_t exp;
        std::string path;
        struct stat hs;
        if (backend_.handle_location(q.fh, exp, path, hs) == 0)
          emit(EventKind::kMetadata, exp, path, {}, S_ISDIR(hs.st_mode), static_cast<uint64_t>(hs.st_size),
               ms(hs.st_mtim), static_cast<uint64_t>(hs.st_ino));
      }
      break;
    }
    case proto::kSetxattr:
    case proto::kRemovexattr:
      node_event(EventKind::kMetadata, q.node);
      break;
    case proto::kOpen: {
      const int flags = static_cast<int>(q.arg32a);
      if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) opened(rsp.fh, flags & O_TRUNC);
      break;
    }
    case proto::kWrite:
    case proto::kFallocate:
      written(q.fh);
      break;
    case proto::kFlush:
    case proto::kFsync:
      closed(q.fh, false);
      break;
    case proto::kRelease:
      closed(q.fh, true);
      break;
    default:
      break;
  }
}

void ChangeEventCall::before(const Call& c) {
  const uint8_t op = c.req.op;
  if (op != proto::kUnlink && op != proto::kRmdir && op != proto::kRename) return;
  // After the call the names are gone or hold something else: what they held is only known now.
  auto note = [&](uint64_t dir, std::string_view name, std::optional<ChangeEvents::Victim>& out) {
    struct stat st;
    if (ev_.backend_.entry_stat(dir, name, st) < 0) return;
    out = ChangeEvents::Victim{S_ISDIR(st.st_mode), static_cast<uint64_t>(st.st_size),
                               static_cast<uint64_t>(st.st_ino), ms(st.st_mtim)};
  };
  note(c.req.node, c.name1, victims_[0]);
  if (op == proto::kRename) note(c.req.arg64, c.name2, victims_[1]);
}

void ChangeEventCall::after(const Call& c, proto::Response& rsp) {
  if (rsp.status != 0) return;
  try {
    ev_.after(c, rsp, victims_);
  } catch (...) {
    // out of memory: the reply stands, and reconciliation finds the change the event would have carried
  }
}

}  // namespace xenfs

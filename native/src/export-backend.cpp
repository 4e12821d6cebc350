// ExportBackend: see export-backend.hpp for the contract and export-backend-internal.hpp for the kernel facts
// the backend leans on. This file holds construction, the node and handle tables, the helpers over
// descriptors, lookups and attributes; files, directory listing, namespace changes and extended attributes
// live in export-files.cpp, export-readdir.cpp, export-namespace.cpp and export-xattr.cpp.
#include "export-backend.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <memory>
#include <utility>

#include "export-backend-internal.hpp"
#include "span-cursor.hpp"

namespace xenfs {

using namespace export_detail;

namespace {

constexpr uint32_t kSetattrKnown = proto::kSetMode | proto::kSetUid | proto::kSetGid | proto::kSetSize |
                                   proto::kSetAtime | proto::kSetMtime | proto::kSetAtimeNow |
                                   proto::kSetMtimeNow;
constexpr long kSysFchmodat2 = 452;  // Linux 6.6; not in this libc's headers

// Linux's new_encode_dev: the 32-bit form FUSE and the guest's stat expect.
uint32_t encode_dev(dev_t d) {
  const uint32_t maj = major(d), min = minor(d);
  return (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
}

void fill_attr(const struct stat& st, proto::Attr& a) {
  a = proto::Attr{};
  a.ino = st.st_ino;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime_s = st.st_atim.tv_sec;
  a.mtime_s = st.st_mtim.tv_sec;
  a.ctime_s = st.st_ctim.tv_sec;
  a.atime_ns = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtime_ns = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctime_ns = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(std::min<nlink_t>(st.st_nlink, UINT32_MAX));
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = encode_dev(st.st_rdev);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
}

int attr_of(int fd, proto::Response& r) {
  struct stat st;
  if (int e = stat_fd(fd, st)) return e;
  fill_attr(st, r.attr);
  return 0;
}

int set_times(int fd, uint32_t valid, const proto::SetattrPayload& p) {
  auto pick = [](bool now, bool set, int64_t s, uint32_t ns, timespec& out) -> int {
    if (now) out = timespec{0, UTIME_NOW};
    else if (set) out = timespec{static_cast<time_t>(s), static_cast<long>(ns)};
    else out = timespec{0, UTIME_OMIT};
    return set && !now && ns >= 1000000000u ? -EINVAL : 0;
  };
  timespec ts[2];
  if (int e = pick(valid & proto::kSetAtimeNow, valid & proto::kSetAtime, p.atime_s, p.atime_ns, ts[0]))
    return e;
  if (int e = pick(valid & proto::kSetMtimeNow, valid & proto::kSetMtime, p.mtime_s, p.mtime_ns, ts[1]))
    return e;
  if (ts[0].tv_nsec == UTIME_OMIT && ts[1].tv_nsec == UTIME_OMIT) return 0;
  return utimensat(fd, "", ts, kStatFlags) < 0 ? neg_errno() : 0;
}

}  // namespace

// ---- tables ----

ExportBackend::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

ExportBackend::Handle::~Handle() {
  if (fd >= 0) ::close(fd);
}

ExportBackend::FdRef ExportBackend::own(int fd) {
  try {
    return std::make_shared<const Fd>(fd);
  } catch (...) {
    ::close(fd);
    return nullptr;
  }
}

size_t ExportBackend::KeyHash::operator()(const Key& k) const noexcept {
  uint64_t h = static_cast<uint64_t>(k.ino) * 0x9e3779b97f4a7c15ull;
  h ^= (static_cast<uint64_t>(k.dev) + k.exp) * 0xc2b2ae3d27d4eb4full;
  return static_cast<size_t>(h ^ (h >> 31));
}

ExportBackend::ExportBackend(std::vector<ExportRoot> roots, BackendLimits limits, IdMap ids)
    : limits_(limits), ids_(std::move(ids)) {
  try {
    read_only_.resize(roots.size());
    writes_via_dom0_.resize(roots.size());
    for (size_t i = 0; i < roots.size(); ++i) {
      Node root;
      root.exp = static_cast<uint32_t>(i);
      root.fd = own(std::exchange(roots[i].dirfd, -1));
      read_only_[i] = roots[i].read_only;
      writes_via_dom0_[i] = roots[i].writes_via_dom0;
      struct stat st;
      if (root.fd && stat_fd(root.fd->fd, st) == 0) {
        root.key = Key{root.exp, st.st_dev, st.st_ino};
        by_key_.emplace(root.key, i + 1);
      }
      nodes_.pin(i, std::move(root));
      root_count_ = static_cast<uint32_t>(i + 1);
    }
  } catch (...) {
    // Out of memory while building: the roots built so far serve, the rest answer -ESTALE; the addon's
    // constructor call must not throw.
    for (auto& root : roots)
      if (root.dirfd >= 0) ::close(root.dirfd);
  }
  proc_fd_ = ::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct statfs sf;
  if (proc_fd_ >= 0 && (fstatfs(proc_fd_, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)) {
    ::close(proc_fd_);  // not procfs: reopening through it could land anywhere
    proc_fd_ = -1;
  }
}

ExportBackend::~ExportBackend() {
  release_all();
  if (proc_fd_ >= 0) ::close(proc_fd_);
  for (int fd : ro_trees_)
    if (fd >= 0) ::close(fd);
}

int ExportBackend::node(uint64_t id, NodeRef& out) const {
  std::lock_guard lock(nodes_mu_);
  const Node* n = nodes_.find(id);
  if (!n || !n->fd) return -ESTALE;
  out.fd = n->fd;
  out.exp = n->exp;
  return 0;
}

int ExportBackend::handle(uint64_t id, HandleRef& out) const {
  std::lock_guard lock(handles_mu_);
  const HandleRef* h = handles_.find(id);
  if (!h) return -EBADF;
  out = *h;
  return 0;
}

int ExportBackend::target(const Call& c, Target& t) const {
  if (c.req.fh == 0) {
    if (int e = node(c.req.node, t.node)) return e;
    t.fd = t.node.fdn();
    t.exp = t.node.exp;
    return 0;
  }
  if (int e = handle(c.req.fh, t.handle)) return e;
  t.fd = t.handle->fd;
  t.exp = t.handle->exp;
  return 0;
}

int ExportBackend::add_entry(uint32_t exp, int fd, proto::Response& r) {
  struct stat st;
  if (int e = stat_fd(fd, st)) {
    ::close(fd);
    return e;
  }
  FdRef fresh = own(fd);  // declared before the lock: a duplicate closes after it is released
  if (!fresh) return -ENOMEM;
  const Key key{exp, st.st_dev, st.st_ino};
  uint64_t id;
  {
    std::lock_guard lock(nodes_mu_);
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {
      id = it->second;
      ++nodes_.find(id)->nlookup;
    } else {
      // limits.max_nodes: every node pins an O_PATH descriptor in dom0.
      if (nodes_.live() >= limits_.max_nodes) return -ENFILE;
      try {
        id = nodes_.insert(Node{fresh, exp, 1, key});
      } catch (...) {
        return -ENOMEM;
      }
      try {
        by_key_.emplace(key, id);
      } catch (...) {
        nodes_.take(id);
        return -ENOMEM;
      }
      if (watcher_) watcher_->node_added(id, InodeKey{key.dev, key.ino});
    }
  }
  r.node = id;
  r.generation = id >> 32;
  fill_attr(st, r.attr);
  map_attr(r.attr);
  return 0;
}

void ExportBackend::drop_lookups(uint64_t id, uint64_t count) {
  if (is_root(id)) return;
  Node dropped;  // destroyed after the lock is released
  std::lock_guard lock(nodes_mu_);
  Node* n = nodes_.find(id);
  if (!n) return;
  if (count < n->nlookup) {
    n->nlookup -= count;
    return;
  }
  by_key_.erase(n->key);
  report_dropped(id, *n);
  dropped = nodes_.take(id);
}

bool ExportBackend::nodes_full() const {
  std::lock_guard lock(nodes_mu_);
  return nodes_.live() >= limits_.max_nodes;
}

bool ExportBackend::handles_full() const {
  std::lock_guard lock(handles_mu_);
  return handles_.live() >= limits_.max_handles;
}

int ExportBackend::add_handle(uint32_t exp, int fd, bool dir, proto::Response& r) {
  HandleRef h;  // declared before the lock: a refused handle closes after it is released
  try {
    h = std::make_shared<Handle>();
  } catch (...) {
    ::close(fd);
    return -ENOMEM;
  }
  h->fd = fd;
  h->exp = exp;
  h->dir = dir;
  std::lock_guard lock(handles_mu_);
  // limits.max_handles: open files and directories a guest may hold.
  if (handles_.live() >= limits_.max_handles) return -EMFILE;
  try {
    r.fh = handles_.insert(h);
  } catch (...) {
    return -ENOMEM;
  }
  return 0;
}

void ExportBackend::release_all() {
  SlotTable<HandleRef> handles;  // swapped out and closed after the lock: closing a data fd may flush
  {
    std::lock_guard lock(handles_mu_);
    std::swap(handles, handles_);
  }
  std::lock_guard lock(nodes_mu_);
  nodes_.for_each([this](uint64_t id, const Node& n) {
    if (!is_root(id)) report_dropped(id, n);
  });
  nodes_.drain([](Node&&) {});  // O_PATH closes never block, so under the lock is fine
  nodes_.for_each_pinned([](Node& root) { root.nlookup = 0; });
  std::erase_if(by_key_, [this](const auto& kv) { return !is_root(kv.second); });
}

uint32_t ExportBackend::handle_count() const {
  std::lock_guard lock(handles_mu_);
  return handles_.live();
}

uint32_t ExportBackend::node_count() const {
  std::lock_guard lock(nodes_mu_);
  return nodes_.live();
}

// ---- helpers over descriptors ----

int ExportBackend::resolve(const NodeRef& parent, const char* path, int& out) const {
  int fd = openat2_beneath(parent.fdn(), path, O_PATH | O_NOFOLLOW, 0);
  if (fd < 0) return fd;
  out = fd;
  return 0;
}

// Opens the inode behind an O_PATH descriptor with real access flags. Without O_NOFOLLOW (see the kernel
// facts in export-backend-internal.hpp): the magic link jumps to the node's own inode and goes no further,
// and a symlink node then fails ELOOP in the open itself, so nothing behind a symlink is reached. Callers
// check the type first.
int ExportBackend::reopen(int fd, int flags) const {
  if (proc_fd_ < 0) return -EIO;
  char num[16];
  snprintf(num, sizeof num, "%d", fd);
  for (;;) {
    int out = openat(proc_fd_, num, flags | O_CLOEXEC);
    if (out >= 0) return out;
    if (errno != EINTR) return neg_errno();
  }
}

int ExportBackend::chmod_fd(int fd, mode_t mode) const {
  if (syscall(kSysFchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0) return 0;
  if (errno != ENOSYS) return neg_errno();
  // Before Linux 6.6: chmod through the magic link. Only called on non-symlinks, so it lands on the node.
  if (proc_fd_ < 0) return -EIO;
  char num[16];
  snprintf(num, sizeof num, "%d", fd);
  return fchmodat(proc_fd_, num, mode, 0) < 0 ? neg_errno() : 0;
}

// Creation applies dom0's umask, but the guest already applied its own: give back the permission bits the
// umask took, leaving anything the kernel decided (an inherited setgid bit) alone.
void ExportBackend::restore_mode(int fd, mode_t wanted) const {
  struct stat st;
  if (stat_fd(fd, st) != 0 || S_ISLNK(st.st_mode)) return;
  const mode_t missing = wanted & 0777 & ~st.st_mode;
  if (missing) chmod_fd(fd, (st.st_mode & 07777) | missing);  // best effort: the file exists either way
}

// ---- lookups ----

int ExportBackend::lookup(const Call& c, proto::Response& r) {
  CStr name;
  if (int e = copy_name(c.name1, name)) return e;
  return lookup_path(c.req.node, name.s, r);
}

int ExportBackend::walk(const Call& c, proto::Response& r) {
  CStr path;
  if (int e = copy_path(c.name1, path)) return e;
  if (c.req.arg32a & ~proto::kWalkPeek) return -EINVAL;
  if (!(c.req.arg32a & proto::kWalkPeek)) return lookup_path(c.req.node, path.s, r);
  NodeRef parent;
  if (int e = node(c.req.node, parent)) return e;
  int fd;
  if (int e = resolve(parent, path.s, fd)) return e;
  Closer closer{fd};
  int e = attr_of(fd, r);
  map_attr(r.attr);
  return e;  // r.node stays 0: no node was kept, so none is owed a FORGET
}

// Confined beneath the starting node, not merely the export: ".." may climb back to it but no higher.
int ExportBackend::lookup_path(uint64_t parent_id, const char* path, proto::Response& r) {
  NodeRef parent;
  if (int e = node(parent_id, parent)) return e;
  int fd;
  if (int e = resolve(parent, path, fd)) return e;
  return add_entry(parent.exp, fd, r);
}

int ExportBackend::forget(const Call& c, proto::Response&) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  drop_lookups(c.req.node, c.req.arg64);
  return 0;
}

// ---- attributes ----

int ExportBackend::getattr(const Call& c, proto::Response& r) {
  Target t;
  if (int e = target(c, t)) return e;
  int e = attr_of(t.fd, r);
  map_attr(r.attr);
  return e;
}

int ExportBackend::setattr(const Call& c, proto::Response& r) {
  proto::SetattrPayload p{};
  if (span_read(c.in, &p, sizeof p) != sizeof p) return -EINVAL;
  const uint32_t valid = c.req.arg32a;
  if (valid & ~kSetattrKnown) return -EINVAL;
  Target t;
  if (int e = target(c, t)) return e;
  if (valid != 0 && read_only(t.exp)) return -EROFS;
  struct stat st;
  if (int e = stat_fd(t.fd, st)) return e;
  // Mode and owner first, size next, times last: truncation would otherwise overwrite the guest's mtime.
  if (valid & proto::kSetMode)
    if (int e = set_mode(t.fd, st, p.mode)) return e;
  if (valid & (proto::kSetUid | proto::kSetGid)) {
    // The guest names its own ids; an id its map does not cover has no owner on the host to give the file.
    uint32_t uid = static_cast<uint32_t>(-1), gid = static_cast<uint32_t>(-1);
    if ((valid & proto::kSetUid) && !ids_.uid_to_host(p.uid, uid)) return -EINVAL;
    if ((valid & proto::kSetGid) && !ids_.gid_to_host(p.gid, gid)) return -EINVAL;
    if (fchownat(t.fd, "", uid, gid, kStatFlags) < 0) return neg_errno();
  }
  if (valid & proto::kSetSize) {
    if (p.size > limits_.max_file_size) return -EFBIG;
    if (int e = set_size(t, st, p.size)) return e;
  }
  if (int e = set_times(t.fd, valid, p)) return e;
  int e = attr_of(t.fd, r);
  map_attr(r.attr);
  return e;
}

int ExportBackend::set_mode(int fd, const struct stat& st, uint32_t mode) const {
  if (S_ISLNK(st.st_mode)) return -EOPNOTSUPP;  // as Linux: symlink modes are fixed
  mode_t m = mode & 07777;
  if (!S_ISDIR(st.st_mode)) m &= ~kSetIdBits;
  return chmod_fd(fd, m);
}

int ExportBackend::set_size(const Target& t, const struct stat& st, uint64_t size) const {
  if (size > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
  if (S_ISDIR(st.st_mode)) return -EISDIR;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  // A guest handle truncates through itself (the kernel checks it is writable); a node needs a write open.
  Closer opened{-1};
  int fd = t.fd;
  if (!t.handle) {
    fd = opened.fd = reopen(t.fd, O_WRONLY);
    if (fd < 0) return fd;
  }
  for (;;) {
    if (ftruncate(fd, static_cast<off_t>(size)) == 0) return 0;
    if (errno != EINTR) return neg_errno();
  }
}

int ExportBackend::statfs(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  struct statfs sf;
  if (fstatfs(n.fdn(), &sf) < 0) return neg_errno();
  r.statfs = proto::Statfs{};
  r.statfs.blocks = sf.f_blocks;
  r.statfs.bfree = sf.f_bfree;
  r.statfs.bavail = sf.f_bavail;
  r.statfs.files = sf.f_files;
  r.statfs.ffree = sf.f_ffree;
  r.statfs.bsize = static_cast<uint32_t>(sf.f_bsize);
  r.statfs.namelen = static_cast<uint32_t>(sf.f_namelen);
  r.statfs.frsize = static_cast<uint32_t>(sf.f_frsize);
  return 0;
}

// Checked with dom0's credentials (the front end enforces the guest's own permissions): this answers only
// "does the node exist, is the export writable, is anything executable".
int ExportBackend::access(const Call& c, proto::Response&) {
  const int mask = static_cast<int>(c.req.arg32a);
  if (mask & ~(R_OK | W_OK | X_OK)) return -EINVAL;
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  if (mask == F_OK) return 0;
  if ((mask & W_OK) && read_only(n.exp)) return -EROFS;
  return syscall(SYS_faccessat2, n.fdn(), "", mask, kStatFlags) < 0 ? neg_errno() : 0;
}

}  // namespace xenfs

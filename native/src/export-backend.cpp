// ExportBackend: see export-backend.hpp for the contract. Kernel facts this file leans on (Linux 6.18):
// - openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS confines every lookup; with
//   O_PATH | O_NOFOLLOW a trailing symlink yields a descriptor on the link itself.
// - O_PATH descriptors work with fstatat, fchownat, utimensat, faccessat2 (AT_EMPTY_PATH), fchmodat2 (6.6+),
//   fstatfs, readlinkat(fd, "") and linkat(AT_EMPTY_PATH); fchmod, futimens, f*xattr and even the new
//   *xattrat syscalls refuse them with EBADF, so data and xattr access reopen through /proc/self/fd.
// - Reopening /proc/self/fd/N with O_NOFOLLOW always fails ELOOP (the magic link is the trailing
//   component), so reopens go without it and check the node's type first instead.
#include "export-backend.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "span-cursor.hpp"

namespace xenfs {
namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
constexpr int kStatFlags = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
// What a guest may ask of open/create. Everything else (O_CREAT, O_PATH, O_TMPFILE, O_DIRECTORY, ...) is the
// backend's business, never the guest's.
constexpr int kGuestOpenFlags =
    O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME | O_NONBLOCK;
// Set-id bits on files are never created for a guest: a guest that owns a file may chown it to root, and a
// setuid-root binary on dom0's disk is an escalation path for any dom0 user who can reach the export.
// (The setgid bit on directories only steers group inheritance and stays.)
constexpr mode_t kSetIdBits = S_ISUID | S_ISGID;
constexpr uint32_t kSetattrKnown = proto::kSetMode | proto::kSetUid | proto::kSetGid | proto::kSetSize |
                                   proto::kSetAtime | proto::kSetMtime | proto::kSetAtimeNow |
                                   proto::kSetMtimeNow;
// NO_HIDE_STALE is left out on purpose: it would expose stale disk blocks of other files.
constexpr int kFallocModes = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE |
                             FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE;
constexpr long kSysFchmodat2 = 452;  // Linux 6.6; not in this libc's headers
constexpr int kOpenat2Retries = 8;
constexpr size_t kDirentBatch = 16384;  // most getdents64 bytes one READDIR reads at a time   // EAGAIN: a concurrent rename raced a ".." check

int neg_errno() { return errno > 0 ? -errno : -EIO; }

struct CStr {
  char s[proto::kMaxPath + 1];
};

// A path for openat2, which confines it: 1..4096 bytes, no NUL.
int copy_path(std::string_view in, CStr& out) {
  if (in.empty() || in.find('\0') != std::string_view::npos) return -EINVAL;
  if (in.size() > proto::kMaxPath) return -ENAMETOOLONG;
  memcpy(out.s, in.data(), in.size());
  out.s[in.size()] = '\0';
  return 0;
}

// One path component. mkdirat, unlinkat, renameat2, symlinkat, linkat and mknodat take no RESOLVE_ flags, so
// it is this check (repeated here although the engine made it) that keeps them inside the parent directory.
int copy_name(std::string_view in, CStr& out) {
  if (in.size() > proto::kMaxName) return -ENAMETOOLONG;
  if (in == "." || in == ".." || in.find('/') != std::string_view::npos) return -EINVAL;
  return copy_path(in, out);
}

int openat2_beneath(int dirfd, const char* path, uint64_t flags, uint64_t mode) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = kResolve;
  for (int tries = 0;;) {
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && ++tries < kOpenat2Retries)) continue;
    return neg_errno();
  }
}

int stat_fd(int fd, struct stat& st) { return fstatat(fd, "", &st, kStatFlags) < 0 ? neg_errno() : 0; }

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

// Only regular files can be opened for data: dom0 must never block opening a FIFO or wake a device.
int openable(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return 0;
  if (S_ISDIR(st.st_mode)) return -EISDIR;
  if (S_ISLNK(st.st_mode)) return -ELOOP;
  return -ENXIO;
}

bool opens_for_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

int guest_open_flags(uint32_t raw, int& out) {
  out = static_cast<int>(raw) & kGuestOpenFlags;
  return (out & O_ACCMODE) == O_ACCMODE ? -EINVAL : 0;
}

// The "user." namespace only: trusted.* and security.* (security.capability, LSM labels) would let a guest
// set file capabilities or labels that dom0 honours, and system.* carries ACLs dom0 enforces on its own users.
int copy_xattr_name(std::string_view in, CStr& out) {
  if (in.size() > XATTR_NAME_MAX) return -ERANGE;
  if (in.size() <= 5 || in.substr(0, 5) != "user.") return -EOPNOTSUPP;
  return copy_path(in, out);
}

using Xfer = ssize_t (*)(int, const iovec*, int, off_t);

// preadv/pwritev until `want` bytes moved, end of file, or an error after some progress (which is then
// reported as the short count, as read(2) would).
ssize_t transfer(Xfer op, int fd, const IoSpan& span, size_t want, uint64_t offset) {
  if (offset > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
  size_t done = 0;
  while (done < want) {
    IovWindow w(span, done, want - done);
    if (w.count == 0) break;
    ssize_t n = op(fd, w.iov, w.count, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return done ? static_cast<ssize_t>(done) : neg_errno();
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

// Closes a descriptor on scope exit.
struct Closer {
  int fd;
  ~Closer() {
    if (fd >= 0) ::close(fd);
  }
};

// Output whose size the guest cannot know in advance: len 0 asks for the size, too small is -ERANGE.
int reply_bytes(const Call& c, proto::Response& r, const void* data, size_t len) {
  r.len = static_cast<uint32_t>(len);
  if (c.req.len == 0) return 0;
  SpanWriter w(c.out, c.req.len);
  if (len > w.room()) {
    r.len = 0;
    return -ERANGE;
  }
  w.put(data, len);
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

int finish_readdir(const SpanWriter& out, bool eof, proto::Response& r) {
  r.len = static_cast<uint32_t>(out.written());
  if (eof) r.flags |= proto::kReaddirEof;
  return 0;
}

// Appends the records of one getdents64 batch; false when the next one does not fit.
bool emit_dirents(const char* buf, size_t n, SpanWriter& out) {
  constexpr size_t kNameOff = offsetof(struct dirent64, d_name);
  for (size_t pos = 0; pos + kNameOff <= n;) {
    struct dirent64 d;
    memcpy(&d, buf + pos, kNameOff);
    if (d.d_reclen <= kNameOff || pos + d.d_reclen > n) break;  // never trust a length into a loop
    const char* name = buf + pos + kNameOff;
    const size_t len = strnlen(name, d.d_reclen - kNameOff);
    pos += d.d_reclen;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) continue;
    const size_t padded = (len + 7) & ~size_t{7};
    if (sizeof(proto::DirentHeader) + padded > out.room()) return false;
    proto::DirentHeader hdr{};
    hdr.ino = d.d_ino;
    hdr.next = static_cast<uint64_t>(d.d_off);
    hdr.namelen = static_cast<uint16_t>(len);
    hdr.type = d.d_type;
    out.put(&hdr, sizeof hdr);
    out.put(name, len);
    out.zeros(padded - len);
  }
  return true;
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

ExportBackend::ExportBackend(std::vector<ExportRoot> roots, BackendLimits limits) : limits_(limits) {
  try {
    read_only_.resize(roots.size());
    for (size_t i = 0; i < roots.size(); ++i) {
      Node root;
      root.exp = static_cast<uint32_t>(i);
      root.fd = own(std::exchange(roots[i].dirfd, -1));
      read_only_[i] = roots[i].read_only;
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
    }
  }
  r.node = id;
  r.generation = id >> 32;
  fill_attr(st, r.attr);
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
  dropped = nodes_.take(id);
}

bool ExportBackend::nodes_full() const {
  std::lock_guard lock(nodes_mu_);
  return nodes_.live() >= limits_.max_nodes;
}

// Removes an entry this call created but could not hand to the guest (a limit lost in a race): the guest was
// told the call failed, so the entry must not exist either.
void ExportBackend::undo_entry(int parent_fd, const char* name) {
  if (unlinkat(parent_fd, name, 0) < 0 && errno == EISDIR) unlinkat(parent_fd, name, AT_REMOVEDIR);
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

// Opens the inode behind an O_PATH descriptor with real access flags. Without O_NOFOLLOW (see the top of
// the file): the magic link jumps to the node's own inode and goes no further, and a symlink node then fails
// ELOOP in the open itself, so nothing behind a symlink is reached. Callers check the type first.
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

int ExportBackend::open_existing(int path_fd, int flags, int& out) const {
  struct stat st;
  if (int e = stat_fd(path_fd, st)) return e;
  if (int e = openable(st)) return e;
  int fd = reopen(path_fd, flags);
  if (fd < 0) return fd;
  out = fd;
  return 0;
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
  return lookup_path(c.req.node, path.s, r);
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
  return attr_of(t.fd, r);
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
    const uid_t uid = (valid & proto::kSetUid) ? p.uid : static_cast<uid_t>(-1);
    const gid_t gid = (valid & proto::kSetGid) ? p.gid : static_cast<gid_t>(-1);
    if (fchownat(t.fd, "", uid, gid, kStatFlags) < 0) return neg_errno();
  }
  if (valid & proto::kSetSize) {
    if (p.size > limits_.max_file_size) return -EFBIG;
    if (int e = set_size(t, st, p.size)) return e;
  }
  if (int e = set_times(t.fd, valid, p)) return e;
  return attr_of(t.fd, r);
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

int ExportBackend::readlink(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  char buf[proto::kMaxPath + 1];
  const ssize_t len = readlinkat(n.fdn(), "", buf, sizeof buf);
  if (len < 0) return errno == ENOENT ? -EINVAL : neg_errno();  // "" on a non-link reports ENOENT
  return reply_bytes(c, r, buf, static_cast<size_t>(len));
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

// ---- files ----

int ExportBackend::open(const Call& c, proto::Response& r) {
  int flags;
  if (int e = guest_open_flags(c.req.arg32a, flags)) return e;
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  if (opens_for_write(flags) && read_only(n.exp)) return -EROFS;
  if (handles_full()) return -EMFILE;  // before O_TRUNC can do anything
  int fd;
  if (int e = open_existing(n.fdn(), flags, fd)) return e;
  return add_handle(n.exp, fd, false, r);
}

int ExportBackend::create(const Call& c, proto::Response& r) {
  CStr name;
  if (int e = copy_name(c.name1, name)) return e;
  int flags;
  if (int e = guest_open_flags(c.req.arg32a, flags)) return e;
  NodeRef parent;
  if (int e = node(c.req.node, parent)) return e;
  if (read_only(parent.exp)) return -EROFS;
  if (handles_full()) return -EMFILE;
  if (nodes_full()) return -ENFILE;
  const bool exclusive = c.req.arg32a & O_EXCL;
  const mode_t mode = c.req.arg32b & 07777 & ~kSetIdBits;
  // Always O_EXCL first so an existing name is never opened by the O_CREAT path (which would open a FIFO or a
  // device); an existing file goes through the typed OPEN path instead. Bounded retries on unlink races.
  for (int tries = 0; tries < 4; ++tries) {
    int fd = openat2_beneath(parent.fdn(), name.s, flags | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    if (fd >= 0) {
      restore_mode(fd, mode);
      int e = finish_create(parent.exp, fd, r);
      if (e) undo_entry(parent.fdn(), name.s);
      return e;
    }
    if (fd != -EEXIST || exclusive) return fd;
    int path_fd;
    int e = resolve(parent, name.s, path_fd);
    if (e == -ENOENT) continue;
    if (e) return e;
    Closer closer{path_fd};
    if (int e2 = open_existing(path_fd, flags, fd)) return e2;
    return finish_create(parent.exp, fd, r);
  }
  return -EAGAIN;
}

// A new handle and one counted lookup of its node, or neither.
int ExportBackend::finish_create(uint32_t exp, int fd, proto::Response& r) {
  const int path_fd = reopen(fd, O_PATH);  // the node pins an O_PATH fd, not the guest's data fd
  if (path_fd < 0) {
    ::close(fd);
    return path_fd;
  }
  if (int e = add_entry(exp, path_fd, r)) {
    ::close(fd);
    return e;
  }
  if (int e = add_handle(exp, fd, false, r)) {
    drop_lookups(r.node, 1);
    return e;
  }
  return 0;
}

int ExportBackend::read(const Call& c, proto::Response& r) {
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  if (h->dir) return -EISDIR;
  const size_t want = std::min<size_t>(c.req.len, c.out.len);
  const ssize_t n = transfer(::preadv, h->fd, c.out, want, c.req.offset);
  if (n < 0) return static_cast<int>(n);
  r.len = static_cast<uint32_t>(n);
  return 0;
}

// True when [offset, offset + len) reaches past the per-file size cap; never overflows.
bool ExportBackend::past_size_cap(uint64_t offset, uint64_t len) const {
  return offset > limits_.max_file_size || len > limits_.max_file_size - offset;
}

int ExportBackend::write(const Call& c, proto::Response& r) {
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  if (h->dir) return -EISDIR;
  if (read_only(h->exp)) return -EROFS;
  uint64_t at = c.req.offset;
  // An O_APPEND write lands at the end whatever offset the guest names, so the end is what gets checked.
  if (fcntl(h->fd, F_GETFL) & O_APPEND) {
    struct stat st;
    if (fstat(h->fd, &st) < 0) return neg_errno();
    at = static_cast<uint64_t>(st.st_size);
  }
  if (past_size_cap(at, c.in.len)) return -EFBIG;
  const ssize_t n = transfer(::pwritev, h->fd, c.in, c.in.len, c.req.offset);
  if (n < 0) return static_cast<int>(n);
  r.len = static_cast<uint32_t>(n);
  return 0;
}

int ExportBackend::flush(const Call& c, proto::Response&) {
  HandleRef h;
  return handle(c.req.fh, h);
}

int ExportBackend::fsync(const Call& c, proto::Response&) {
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  const int rc = (c.req.arg32a & 1) ? fdatasync(h->fd) : ::fsync(h->fd);
  return rc < 0 ? neg_errno() : 0;
}

int ExportBackend::release(const Call& c, proto::Response&) {
  HandleRef h;  // destroyed after the lock: the close runs outside it
  std::lock_guard lock(handles_mu_);
  if (!handles_.find(c.req.fh)) return -EBADF;
  h = handles_.take(c.req.fh);
  return 0;
}

int ExportBackend::fallocate(const Call& c, proto::Response&) {
  const int mode = static_cast<int>(c.req.arg32a);
  if (mode & ~kFallocModes) return -EOPNOTSUPP;
  if (c.req.offset > static_cast<uint64_t>(INT64_MAX) || c.req.arg64 > static_cast<uint64_t>(INT64_MAX))
    return -EINVAL;
  // Everything but punching a hole takes disk blocks, KEEP_SIZE included, so everything else meets the cap.
  if (!(mode & FALLOC_FL_PUNCH_HOLE) && past_size_cap(c.req.offset, c.req.arg64)) return -EFBIG;
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  if (h->dir) return -EISDIR;
  if (read_only(h->exp)) return -EROFS;
  for (;;) {
    if (::fallocate(h->fd, mode, static_cast<off_t>(c.req.offset), static_cast<off_t>(c.req.arg64)) == 0)
      return 0;
    if (errno != EINTR) return neg_errno();
  }
}

// ---- directories ----

int ExportBackend::opendir(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  struct stat st;
  if (int e = stat_fd(n.fdn(), st)) return e;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  if (handles_full()) return -EMFILE;
  const int fd = reopen(n.fdn(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  return add_handle(n.exp, fd, true, r);
}

// Records for one READDIR: seek to the guest's cookie, then getdents64 until the output is full or the
// directory ends. Each record's `next` is the kernel's d_off, so the guest pages by cookie and a directory
// of any size is served in bounded memory.
int ExportBackend::readdir(const Call& c, proto::Response& r) {
  HandleRef h;
  if (int e = handle(c.req.fh, h)) return e;
  if (!h->dir) return -ENOTDIR;
  if (c.req.offset > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
  std::lock_guard lock(h->dir_mu);
  if (lseek(h->fd, static_cast<off_t>(c.req.offset), SEEK_SET) < 0) return neg_errno();
  SpanWriter out(c.out, c.req.len);
  // Read about as many entries as the guest can take (our records are never smaller than the kernel's):
  // a full 16 KiB batch for a small buffer would be thrown away and re-read on the next call.
  alignas(8) char buf[kDirentBatch];
  const size_t batch = std::clamp<size_t>(out.room() + 512, 1024, sizeof buf);
  for (;;) {
    const long n = syscall(SYS_getdents64, h->fd, buf, batch);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return out.written() ? finish_readdir(out, false, r) : neg_errno();
    if (n == 0) return finish_readdir(out, true, r);
    if (!emit_dirents(buf, static_cast<size_t>(n), out))
      return out.written() ? finish_readdir(out, false, r) : -EINVAL;  // not even one record fits
  }
}

// ---- namespace changes ----

// `mode` goes to `make` and, since dom0's umask narrows it, is restored on the new entry afterwards.
int ExportBackend::make_entry(const Call& c, proto::Response& r, MakeFn make, mode_t mode) {
  CStr name;
  if (int e = copy_name(c.name1, name)) return e;
  NodeRef parent;
  if (int e = node(c.req.node, parent)) return e;
  if (read_only(parent.exp)) return -EROFS;
  // Checked before anything is made: a limit must refuse the call, not leave an entry the guest was told failed.
  if (nodes_full()) return -ENFILE;
  if (int e = make(c, parent.fdn(), name.s, mode)) return e;
  int fd;
  if (int e = resolve(parent, name.s, fd)) return e;
  if (mode) restore_mode(fd, mode);
  int e = add_entry(parent.exp, fd, r);
  if (e) undo_entry(parent.fdn(), name.s);
  return e;
}

int ExportBackend::mkdir(const Call& c, proto::Response& r) {
  const mode_t mode = c.req.arg32a & 07777;
  return make_entry(c, r, [](const Call&, int dir, const char* name, mode_t m) {
    return mkdirat(dir, name, m) < 0 ? neg_errno() : 0;
  }, mode);
}

int ExportBackend::mknod(const Call& c, proto::Response& r) {
  const mode_t type = c.req.arg32b & S_IFMT;
  if (type != S_IFIFO && type != S_IFSOCK && type != S_IFREG) return -EPERM;  // no devices, ever
  const mode_t mode = c.req.arg32b & 07777 & ~kSetIdBits;
  return make_entry(c, r, [](const Call& call, int dir, const char* name, mode_t m) {
    return mknodat(dir, name, (call.req.arg32b & S_IFMT) | m, 0) < 0 ? neg_errno() : 0;
  }, mode);
}

int ExportBackend::symlink(const Call& c, proto::Response& r) {
  return make_entry(c, r, [](const Call& call, int dir, const char* name, mode_t) {
    CStr target;  // stored verbatim; dom0 never follows it
    if (int e = copy_path(call.name2, target)) return e;
    return symlinkat(target.s, dir, name) < 0 ? neg_errno() : 0;
  }, 0);
}

int ExportBackend::remove(const Call& c, int flags) {
  CStr name;
  if (int e = copy_name(c.name1, name)) return e;
  NodeRef parent;
  if (int e = node(c.req.node, parent)) return e;
  if (read_only(parent.exp)) return -EROFS;
  return unlinkat(parent.fdn(), name.s, flags) < 0 ? neg_errno() : 0;
}

int ExportBackend::unlink(const Call& c, proto::Response&) { return remove(c, 0); }
int ExportBackend::rmdir(const Call& c, proto::Response&) { return remove(c, AT_REMOVEDIR); }

// Two nodes of one export, writable: the shape RENAME and LINK need.
int ExportBackend::node_pair(uint64_t a_id, uint64_t b_id, NodeRef& a, NodeRef& b) const {
  if (int e = node(a_id, a)) return e;
  if (int e = node(b_id, b)) return e;
  if (a.exp != b.exp) return -EXDEV;
  return read_only(a.exp) ? -EROFS : 0;
}

int ExportBackend::rename(const Call& c, proto::Response&) {
  const unsigned flags = c.req.arg32a;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return -EINVAL;
  CStr from, to;
  if (int e = copy_name(c.name1, from)) return e;
  if (int e = copy_name(c.name2, to)) return e;
  NodeRef src, dst;
  if (int e = node_pair(c.req.node, c.req.arg64, src, dst)) return e;
  return renameat2(src.fdn(), from.s, dst.fdn(), to.s, flags) < 0 ? neg_errno() : 0;
}

int ExportBackend::link(const Call& c, proto::Response& r) {
  CStr name;
  if (int e = copy_name(c.name1, name)) return e;
  NodeRef src, parent;
  if (int e = node_pair(c.req.arg64, c.req.node, src, parent)) return e;
  struct stat st;
  if (int e = stat_fd(src.fdn(), st)) return e;
  if (S_ISDIR(st.st_mode)) return -EPERM;
  if (nodes_full()) return -ENFILE;
  if (linkat(src.fdn(), "", parent.fdn(), name.s, AT_EMPTY_PATH) < 0) {
    // Without CAP_DAC_READ_SEARCH AT_EMPTY_PATH answers ENOENT; the magic link does the same job then (it
    // lands on the source inode itself, a symlink included, and never beyond it).
    if (errno != ENOENT || proc_fd_ < 0) return neg_errno();
    char num[16];
    snprintf(num, sizeof num, "%d", src.fdn());
    if (linkat(proc_fd_, num, parent.fdn(), name.s, AT_SYMLINK_FOLLOW) < 0) return neg_errno();
  }
  int fd;
  if (int e = resolve(parent, name.s, fd)) return e;
  int e = add_entry(parent.exp, fd, r);
  if (e) undo_entry(parent.fdn(), name.s);
  return e;
}

// ---- extended attributes ----

// A descriptor for f*xattr (O_PATH ones are refused). Only regular files and directories are reopened; for
// anything else `special` is set and the caller answers as Linux does for user.* there.
int ExportBackend::xattr_fd(const NodeRef& n, int& out, bool& special) const {
  struct stat st;
  if (int e = stat_fd(n.fdn(), st)) return e;
  special = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
  if (special) return 0;
  const int fd = reopen(n.fdn(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return fd;
  out = fd;
  return 0;
}

int ExportBackend::getxattr(const Call& c, proto::Response& r) {
  CStr name;
  if (int e = copy_xattr_name(c.name1, name)) return e;
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  int fd = -1;
  bool special;
  if (int e = xattr_fd(n, fd, special)) return e;
  if (special) return -ENODATA;
  Closer closer{fd};
  if (c.req.len == 0) {
    const ssize_t size = fgetxattr(fd, name.s, nullptr, 0);
    if (size < 0) return neg_errno();
    r.len = static_cast<uint32_t>(size);
    return 0;
  }
  const size_t cap = std::min<size_t>({c.req.len, c.out.len, XATTR_SIZE_MAX});
  std::unique_ptr<char[]> buf(new (std::nothrow) char[cap]);
  if (!buf) return -ENOMEM;
  const ssize_t size = fgetxattr(fd, name.s, buf.get(), cap);
  if (size < 0) return neg_errno();
  return reply_bytes(c, r, buf.get(), static_cast<size_t>(size));
}

int ExportBackend::setxattr(const Call& c, proto::Response&) {
  CStr name;
  if (int e = copy_xattr_name(c.name1, name)) return e;
  const int flags = static_cast<int>(c.req.arg32a);
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return -EINVAL;
  if (c.in.len > limits_.max_xattr_size || c.in.len > XATTR_SIZE_MAX) return -E2BIG;
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  if (read_only(n.exp)) return -EROFS;
  int fd = -1;
  bool special;
  if (int e = xattr_fd(n, fd, special)) return e;
  if (special) return -EPERM;
  Closer closer{fd};
  // Copied out once: the guest may be rewriting the pages while the filesystem reads them.
  std::unique_ptr<char[]> value(new (std::nothrow) char[c.in.len + 1]);
  if (!value) return -ENOMEM;
  const size_t len = span_read(c.in, value.get(), c.in.len);
  return fsetxattr(fd, name.s, value.get(), len, flags) < 0 ? neg_errno() : 0;
}

int ExportBackend::listxattr(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  int fd = -1;
  bool special;
  if (int e = xattr_fd(n, fd, special)) return e;
  if (special) return reply_bytes(c, r, "", 0);
  Closer closer{fd};
  std::unique_ptr<char[]> names(new (std::nothrow) char[XATTR_LIST_MAX + 1]);
  if (!names) return -ENOMEM;
  const ssize_t total = flistxattr(fd, names.get(), XATTR_LIST_MAX);
  if (total < 0) return neg_errno();
  // Keep the user.* names only, compacted in place: the guest never learns of other namespaces.
  size_t kept = 0;
  for (size_t pos = 0; pos < static_cast<size_t>(total);) {
    const size_t len = strnlen(names.get() + pos, total - pos);
    if (len > 5 && memcmp(names.get() + pos, "user.", 5) == 0) {
      memmove(names.get() + kept, names.get() + pos, len);
      names[kept + len] = '\0';
      kept += len + 1;
    }
    pos += len + 1;
  }
  return reply_bytes(c, r, names.get(), kept);
}

int ExportBackend::removexattr(const Call& c, proto::Response&) {
  CStr name;
  if (int e = copy_xattr_name(c.name1, name)) return e;
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  if (read_only(n.exp)) return -EROFS;
  int fd = -1;
  bool special;
  if (int e = xattr_fd(n, fd, special)) return e;
  if (special) return -EPERM;
  Closer closer{fd};
  return fremovexattr(fd, name.s) < 0 ? neg_errno() : 0;
}

}  // namespace xenfs

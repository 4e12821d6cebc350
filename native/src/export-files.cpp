// ExportBackend, file data: OPEN, CREATE, READ, WRITE, FLUSH, FSYNC, RELEASE and FALLOCATE, and the file behind a
// handle for the lock table. See export-backend.hpp for the contract.
#include "export-backend.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "export-backend-internal.hpp"
#include "span-cursor.hpp"

namespace xenfs {

using namespace export_detail;

namespace {

// What a guest may ask of open/create. Everything else (O_CREAT, O_PATH, O_TMPFILE, O_DIRECTORY, ...) is the
// backend's business, never the guest's.
constexpr int kGuestOpenFlags =
    O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME | O_NONBLOCK;
// NO_HIDE_STALE is left out on purpose: it would expose stale disk blocks of other files.
constexpr int kFallocModes = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE |
                             FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE;

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

}  // namespace

int ExportBackend::open_existing(int path_fd, int flags, int& out) const {
  struct stat st;
  if (int e = stat_fd(path_fd, st)) return e;
  if (int e = openable(st)) return e;
  int fd = reopen(path_fd, flags);
  if (fd < 0) return fd;
  out = fd;
  return 0;
}

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

int ExportBackend::lock_target(uint64_t fh, LockTarget& out) {
  HandleRef h;
  if (int e = handle(fh, h)) return e;
  struct stat st;
  if (fstat(h->fd, &st) < 0) return neg_errno();
  const int fl = fcntl(h->fd, F_GETFL);
  if (fl < 0) return neg_errno();
  out = LockTarget{st.st_dev, st.st_ino, (fl & O_ACCMODE) != O_WRONLY, (fl & O_ACCMODE) != O_RDONLY};
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

}  // namespace xenfs

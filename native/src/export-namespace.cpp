// ExportBackend, namespace changes: MKDIR, MKNOD, SYMLINK, UNLINK, RMDIR, RENAME, LINK and READLINK. See
// export-backend.hpp for the contract.
#include "export-backend.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "export-backend-internal.hpp"

namespace xenfs {

using namespace export_detail;

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

// Removes an entry this call created but could not hand to the guest (a limit lost in a race): the guest was
// told the call failed, so the entry must not exist either.
void ExportBackend::undo_entry(int parent_fd, const char* name) {
  if (unlinkat(parent_fd, name, 0) < 0 && errno == EISDIR) unlinkat(parent_fd, name, AT_REMOVEDIR);
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

int ExportBackend::readlink(const Call& c, proto::Response& r) {
  NodeRef n;
  if (int e = node(c.req.node, n)) return e;
  char buf[proto::kMaxPath + 1];
  const ssize_t len = readlinkat(n.fdn(), "", buf, sizeof buf);
  if (len < 0) return errno == ENOENT ? -EINVAL : neg_errno();  // "" on a non-link reports ENOENT
  return reply_bytes(c, r, buf, static_cast<size_t>(len));
}

}  // namespace xenfs

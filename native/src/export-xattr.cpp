// ExportBackend, extended attributes: GETXATTR, SETXATTR, LISTXATTR and REMOVEXATTR, in the "user."
// namespace only. See export-backend.hpp for the contract.
#include "export-backend.hpp"

#include <fcntl.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include "export-backend-internal.hpp"
#include "span-cursor.hpp"

namespace xenfs {

using namespace export_detail;

namespace {

// The "user." namespace only: trusted.* and security.* (security.capability, LSM labels) would let a guest
// set file capabilities or labels that dom0 honours, and system.* carries ACLs dom0 enforces on its own users.
int copy_xattr_name(std::string_view in, CStr& out) {
  if (in.size() > XATTR_NAME_MAX) return -ERANGE;
  if (in.size() <= 5 || in.substr(0, 5) != "user.") return -EOPNOTSUPP;
  return copy_path(in, out);
}

}  // namespace

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

// The descriptor set/removexattr change a node's attributes through: refused on a read-only export, and on
// symlinks and special files, where Linux keeps no user.* attributes either.
int ExportBackend::writable_xattr_fd(uint64_t id, int& fd) {
  NodeRef n;
  if (int e = node(id, n)) return e;
  if (read_only(n.exp)) return -EROFS;
  bool special;
  if (int e = xattr_fd(n, fd, special)) return e;
  return special ? -EPERM : 0;
}

int ExportBackend::setxattr(const Call& c, proto::Response&) {
  CStr name;
  if (int e = copy_xattr_name(c.name1, name)) return e;
  const int flags = static_cast<int>(c.req.arg32a);
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return -EINVAL;
  if (c.in.len > limits_.max_xattr_size || c.in.len > XATTR_SIZE_MAX) return -E2BIG;
  int fd = -1;
  if (int e = writable_xattr_fd(c.req.node, fd)) return e;
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
  int fd = -1;
  if (int e = writable_xattr_fd(c.req.node, fd)) return e;
  Closer closer{fd};
  return fremovexattr(fd, name.s) < 0 ? neg_errno() : 0;
}

}  // namespace xenfs

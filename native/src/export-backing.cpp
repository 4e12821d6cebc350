// Backing files for FUSE passthrough (docs/native-frontend.md): which descriptor dom0 registers on a guest's FUSE
// connection for one of its open handles. The kernel keeps only the path of what it is given and reopens it with
// the guest's open flags, so the access a guest gets is decided by the mount the path lies on: a file the guest may
// write is registered through the export itself; any other, and every file of a read-only export, through a
// read-only clone of the export's mount, where no open flag can write.
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "export-backend-internal.hpp"
#include "export-backend.hpp"

namespace xenfs {
using namespace export_detail;
namespace {

// open_tree(2) and mount_setattr(2) through syscall(): glibc's <sys/mount.h> and <linux/mount.h> clash on
// Debian 12, and only the constants and struct mount_attr are needed from the latter.
int open_tree_clone(int dirfd) {
  long fd = syscall(SYS_open_tree, dirfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

int make_read_only(int tree_fd) {
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  return syscall(SYS_mount_setattr, tree_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 ? -errno : 0;
}

}  // namespace

int ExportBackend::read_only_tree(uint32_t exp) {
  std::lock_guard lock(ro_mu_);
  if (ro_trees_.size() <= exp) ro_trees_.resize(exp + 1, -1);
  if (ro_trees_[exp] >= 0) return ro_trees_[exp];
  NodeRef root;
  if (int e = node(uint64_t{exp} + 1, root)) return e;
  int tree = open_tree_clone(root.fdn());
  if (tree < 0) return tree;
  int e = make_read_only(tree);
  // open_by_handle_at wants a real descriptor in the mount (open_tree's is O_PATH-like, refused as EBADF); the
  // directory keeps the detached mount alive once the tree descriptor is closed.
  int dir = e < 0 ? e : ::openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 && e == 0) e = neg_errno();
  ::close(tree);
  if (e < 0) return e;
  ro_trees_[exp] = dir;
  return dir;
}

int ExportBackend::backing_key(uint64_t fh, BackingKey& out) {
  HandleRef h;
  if (int e = handle(fh, h)) return e;
  if (h->dir) return -EISDIR;
  struct stat st;
  if (int e = stat_fd(h->fd, st)) return e;
  // Passthrough of a FIFO or a device would hand the guest whatever sits behind it on dom0.
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  out = BackingKey{st.st_dev, st.st_ino, h->exp};
  return 0;
}

bool ExportBackend::may_write(uint64_t fh) {
  HandleRef h;
  if (handle(fh, h) || read_only(h->exp)) return false;
  const int fl = fcntl(h->fd, F_GETFL);
  if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY) return true;
  // Opening for writing has no effect on a regular file beyond the permission check it makes.
  const int fd = reopen(h->fd, O_WRONLY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

int ExportBackend::backing_fd(uint64_t fh, bool writable) {
  HandleRef h;
  if (int e = handle(fh, h)) return e;
  if (h->dir) return -EISDIR;
  // An export whose writes dom0 must see registers no file the guest may write: its opens are then served
  // through dom0, every one of them (one inode cannot mix passthrough and dom0-served opens).
  if (writable && h->exp < writes_via_dom0_.size() && writes_via_dom0_[h->exp]) return -EACCES;
  if (writable && !read_only(h->exp)) {
    // The descriptor's own access mode does not matter: the kernel keeps only its path.
    int fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
    return fd < 0 ? neg_errno() : fd;
  }
  // The same inode, reached through the read-only clone: a file handle names the inode, the clone the mount
  // (open_by_handle_at needs CAP_DAC_READ_SEARCH, which dom0 has).
  const int tree = read_only_tree(h->exp);
  if (tree < 0) return tree;
  auto fhandle = std::unique_ptr<file_handle, decltype(&std::free)>(
      static_cast<file_handle*>(std::malloc(sizeof(file_handle) + MAX_HANDLE_SZ)), &std::free);
  if (!fhandle) return -ENOMEM;
  fhandle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  if (name_to_handle_at(h->fd, "", fhandle.get(), &mount_id, AT_EMPTY_PATH) < 0) return neg_errno();
  int fd = open_by_handle_at(tree, fhandle.get(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  return fd < 0 ? neg_errno() : fd;
}

}  // namespace xenfs

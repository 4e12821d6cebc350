// ExportBackend, what change events ask of it (change-events.hpp): where a node or an open file is now, by the
// kernel's own name for the descriptor dom0 holds. The name is read, never opened: nothing here resolves a path.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "export-backend-internal.hpp"
#include "export-backend.hpp"

namespace xenfs {

using namespace export_detail;

namespace {

int proc_name(int proc_fd, int fd, std::string& out) {
  if (proc_fd < 0) return -EIO;
  char num[16];
  snprintf(num, sizeof num, "%d", fd);
  char buf[PATH_MAX];
  ssize_t n = readlinkat(proc_fd, num, buf, sizeof buf);
  if (n < 0) return neg_errno();
  if (static_cast<size_t>(n) >= sizeof buf) return -ENAMETOOLONG;
  out.assign(buf, static_cast<size_t>(n));
  return 0;
}

}  // namespace

int ExportBackend::fd_location(int fd, uint32_t exp, std::string& path, struct stat& st) const {
  if (int e = stat_fd(fd, st)) return e;
  // An unlinked file keeps a name in /proc with " (deleted)" after it; what it had is gone.
  if (st.st_nlink == 0) return -ENOENT;
  NodeRef root;
  if (int e = node(uint64_t{exp} + 1, root)) return e;
  std::string full, base;
  if (int e = proc_name(proc_fd_, fd, full)) return e;
  if (int e = proc_name(proc_fd_, root.fdn(), base)) return e;
  if (full == base) {
    path.clear();
    return 0;
  }
  // The root "/" is the one name that already ends in a separator.
  const std::string prefix = base == "/" ? base : base + "/";
  if (full.compare(0, prefix.size(), prefix) != 0) return -EXDEV;
  path = full.substr(prefix.size());
  return 0;
}

int ExportBackend::node_location(uint64_t id, uint32_t& exp, std::string& path, struct stat& st) const {
  NodeRef n;
  if (int e = node(id, n)) return e;
  exp = n.exp;
  return fd_location(n.fdn(), n.exp, path, st);
}

int ExportBackend::handle_location(uint64_t fh, uint32_t& exp, std::string& path, struct stat& st) const {
  HandleRef h;
  if (int e = handle(fh, h)) return e;
  exp = h->exp;
  return fd_location(h->fd, h->exp, path, st);
}

}  // namespace xenfs

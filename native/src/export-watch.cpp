// ExportBackend, what cache invalidation across guests asks of it (invalidation.hpp): the inode behind a node, a
// handle or a name, and a watch on the nodes the guest holds. See export-backend.hpp for the contract.
#include <sys/stat.h>

#include <cerrno>

#include "export-backend-internal.hpp"
#include "export-backend.hpp"

namespace xenfs {

using namespace export_detail;

int ExportBackend::node_inode(uint64_t id, InodeKey& out) const {
  std::lock_guard lock(nodes_mu_);
  const Node* n = nodes_.find(id);
  if (!n || !n->fd) return -ESTALE;
  out = InodeKey{n->key.dev, n->key.ino};
  return 0;
}

int ExportBackend::handle_inode(uint64_t fh, InodeKey& out) const {
  HandleRef h;
  if (int e = handle(fh, h)) return e;
  struct stat st;
  if (int e = stat_fd(h->fd, st)) return e;
  out = InodeKey{st.st_dev, st.st_ino};
  return 0;
}

// Only ever one checked component (copy_name), looked at with AT_SYMLINK_NOFOLLOW: nothing is followed, and
// nothing but its attributes leaves this function.
int ExportBackend::entry_stat(uint64_t dir, std::string_view name, struct stat& out) const {
  CStr n;
  if (int e = copy_name(name, n)) return e;
  NodeRef parent;
  if (int e = node(dir, parent)) return e;
  return fstatat(parent.fdn(), n.s, &out, AT_SYMLINK_NOFOLLOW) < 0 ? neg_errno() : 0;
}

int ExportBackend::entry_inode(uint64_t dir, std::string_view name, InodeKey& out) const {
  struct stat st;
  if (int e = entry_stat(dir, name, st)) return e;
  out = InodeKey{st.st_dev, st.st_ino};
  return 0;
}

void ExportBackend::watch_nodes(NodeWatcher* w) {
  std::lock_guard lock(nodes_mu_);
  nodes_.for_each([this](uint64_t id, const Node& n) { report_dropped(id, n); });
  watcher_ = w;
  if (!w) return;
  nodes_.for_each([w](uint64_t id, const Node& n) { w->node_added(id, InodeKey{n.key.dev, n.key.ino}); });
}

}  // namespace xenfs

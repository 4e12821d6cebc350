// The dom0 filesystem backend that serves one guest's export directories. Every path a guest names is
// resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) from a directory the
// guest already holds, so a guest reaches nothing outside its exports and dom0 never follows a symlink the
// guest (or anyone) planted. Thread-safe: the request engine calls it from an engine thread and a worker
// pool at once. It never throws; every failure is a negative errno in the reply.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "file-backend.hpp"
#include "slot-table.hpp"

namespace xenfs {

// One export directory. dirfd is an O_PATH | O_DIRECTORY descriptor; the backend takes ownership of it and
// closes it when the backend is destroyed. read_only refuses every mutation and write-mode open with -EROFS.
struct ExportRoot {
  int dirfd;
  bool read_only;
  bool writes_via_dom0 = false;  // no passthrough backing for files the guest may write
};

class ExportBackend final : public FileBackend {
 public:
  // Ids: roots[i] is node i + 1 and is never forgotten. Other node ids and all handle ids are opaque,
  // server-assigned and never 0; a stale or unknown id answers -ESTALE (node) or -EBADF (handle) and never
  // reaches a newer object. Construction cannot fail; an unusable root answers its requests with an
  // errno. Limits: max_nodes caps the nodes the guest holds lookups on (roots excluded; -ENFILE beyond it),
  // max_handles the open files and directories (-EMFILE), max_xattr_size an xattr value (-E2BIG).
  // `ids` translates owners between the guest's view and the host's (attributes out, chown in).
  ExportBackend(std::vector<ExportRoot> roots, BackendLimits limits, IdMap ids = {});
  ~ExportBackend() override;
  ExportBackend(const ExportBackend&) = delete;
  ExportBackend& operator=(const ExportBackend&) = delete;

  int lookup(const Call& c, proto::Response& r) override;
  int walk(const Call& c, proto::Response& r) override;
  int forget(const Call& c, proto::Response& r) override;
  int getattr(const Call& c, proto::Response& r) override;
  int setattr(const Call& c, proto::Response& r) override;
  int readlink(const Call& c, proto::Response& r) override;
  int open(const Call& c, proto::Response& r) override;
  int create(const Call& c, proto::Response& r) override;
  int read(const Call& c, proto::Response& r) override;
  int write(const Call& c, proto::Response& r) override;
  int flush(const Call& c, proto::Response& r) override;
  int fsync(const Call& c, proto::Response& r) override;
  int release(const Call& c, proto::Response& r) override;
  int opendir(const Call& c, proto::Response& r) override;
  int readdir(const Call& c, proto::Response& r) override;
  int mkdir(const Call& c, proto::Response& r) override;
  int unlink(const Call& c, proto::Response& r) override;
  int rmdir(const Call& c, proto::Response& r) override;
  int rename(const Call& c, proto::Response& r) override;
  int symlink(const Call& c, proto::Response& r) override;
  int link(const Call& c, proto::Response& r) override;
  int statfs(const Call& c, proto::Response& r) override;
  int getxattr(const Call& c, proto::Response& r) override;
  int setxattr(const Call& c, proto::Response& r) override;
  int listxattr(const Call& c, proto::Response& r) override;
  int removexattr(const Call& c, proto::Response& r) override;
  int fallocate(const Call& c, proto::Response& r) override;
  int access(const Call& c, proto::Response& r) override;
  int mknod(const Call& c, proto::Response& r) override;

  // Closes every node (roots stay until destruction) and every handle. In-flight operations keep the
  // descriptors they already took until they finish.
  void release_all() override;
  int backing_key(uint64_t fh, BackingKey& out) override;
  bool may_write(uint64_t fh) override;
  int backing_fd(uint64_t fh, bool writable) override;
  int lock_target(uint64_t fh, LockTarget& out) override;
  int node_inode(uint64_t node, InodeKey& out) const override;
  int handle_inode(uint64_t fh, InodeKey& out) const override;
  int entry_inode(uint64_t dir, std::string_view name, InodeKey& out) const override;
  int node_location(uint64_t node, uint32_t& exp, std::string& path, struct stat& st) const override;
  int handle_location(uint64_t fh, uint32_t& exp, std::string& path, struct stat& st) const override;
  int entry_stat(uint64_t dir, std::string_view name, struct stat& out) const override;
  void watch_nodes(NodeWatcher* w) override;
  uint32_t root_count() const override { return root_count_; }
  uint32_t handle_count() const override;
  // Nodes the guest holds lookups on, roots excluded.
  uint32_t node_count() const override;

 private:
  // A descriptor shared between a table and the operations using it: closed when the last user lets go, so
  // no lock is held across I/O and a concurrent FORGET or RELEASE never closes an fd under a running call.
  struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd();
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
  };
  using FdRef = std::shared_ptr<const Fd>;

  // Nodes are deduplicated per export: the same inode reached through a read-only and a writable export must
  // stay two nodes, or the read-only one would inherit write access.
  struct Key {
    uint32_t exp;
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Node {
    FdRef fd;  // O_PATH | O_NOFOLLOW
    uint32_t exp = 0;
    uint64_t nlookup = 0;
    Key key{};
  };
  struct Handle {
    int fd = -1;  // closed by the destructor, after the last operation using it
    uint32_t exp = 0;
    bool dir = false;
    std::mutex dir_mu;  // serialises lseek + getdents on one directory handle
    ~Handle();
  };
  using HandleRef = std::shared_ptr<Handle>;
  // A node taken out of its table for one operation.
  struct NodeRef {
    FdRef fd;
    uint32_t exp = 0;
    int fdn() const { return fd->fd; }
  };
  // GETATTR/SETATTR address a handle when fh != 0, else a node.
  struct Target {
    NodeRef node;
    HandleRef handle;
    int fd = -1;
    uint32_t exp = 0;
  };
  // Creates one entry in a parent directory: (call, parent fd, name, mode) -> 0 or -errno.
  using MakeFn = int (*)(const Call&, int, const char*, mode_t);

  static FdRef own(int fd);  // takes ownership; nullptr (fd closed) when out of memory
  bool is_root(uint64_t id) const { return id >= 1 && id <= root_count_; }
  bool read_only(uint32_t exp) const { return exp < read_only_.size() && read_only_[exp]; }
  int node(uint64_t id, NodeRef& out) const;
  int handle(uint64_t id, HandleRef& out) const;
  int target(const Call& c, Target& t) const;
  int node_pair(uint64_t a_id, uint64_t b_id, NodeRef& a, NodeRef& b) const;
  bool handles_full() const;
  // Counts one lookup of the inode behind fd (an O_PATH fd it takes ownership of) and fills the entry reply.
  int add_entry(uint32_t exp, int fd, proto::Response& r);
  void drop_lookups(uint64_t id, uint64_t count);
  // Takes ownership of fd and sets r.fh.
  int add_handle(uint32_t exp, int fd, bool dir, proto::Response& r);

  int resolve(const NodeRef& parent, const char* path, int& out) const;
  int lookup_path(uint64_t parent_id, const char* path, proto::Response& r);
  int reopen(int fd, int flags) const;
  int open_existing(int path_fd, int flags, int& out) const;
  int chmod_fd(int fd, mode_t mode) const;
  void restore_mode(int fd, mode_t wanted) const;
  bool past_size_cap(uint64_t offset, uint64_t len) const;
  bool nodes_full() const;
  static void undo_entry(int parent_fd, const char* name);
  int set_mode(int fd, const struct stat& st, uint32_t mode) const;
  int set_size(const Target& t, const struct stat& st, uint64_t size) const;
  int finish_create(uint32_t exp, int fd, proto::Response& r);
  int make_entry(const Call& c, proto::Response& r, MakeFn make, mode_t mode);
  int remove(const Call& c, int flags);
  int xattr_fd(const NodeRef& n, int& out, bool& special) const;
  int writable_xattr_fd(uint64_t id, int& fd);

  mutable std::mutex nodes_mu_;
  SlotTable<Node> nodes_;
  std::unordered_map<Key, uint64_t, KeyHash> by_key_;
  NodeWatcher* watcher_ = nullptr;  // under nodes_mu_
  void report_dropped(uint64_t id, const Node& n) const {
    if (watcher_) watcher_->node_dropped(id, InodeKey{n.key.dev, n.key.ino});
  }
  mutable std::mutex handles_mu_;
  SlotTable<HandleRef> handles_;
  std::vector<bool> read_only_;  // per export; fixed at construction
  std::vector<bool> writes_via_dom0_;
  // Per export, made on first use: a detached, read-only clone of the export's mount (open_tree + mount_setattr),
  // through which read-only handles are registered as FUSE backing files (export-backing.cpp).
  int read_only_tree(uint32_t exp);
  std::mutex ro_mu_;
  std::vector<int> ro_trees_;
  uint32_t root_count_ = 0;
  BackendLimits limits_;
  IdMap ids_;
  void map_attr(proto::Attr& a) const {
    a.uid = ids_.uid_to_guest(a.uid);
    a.gid = ids_.gid_to_guest(a.gid);
  }
  int proc_fd_ = -1;  // /proc/self/fd, for reopening O_PATH descriptors with real access modes
  int fd_location(int fd, uint32_t exp, std::string& path, struct stat& st) const;
};

}  // namespace xenfs

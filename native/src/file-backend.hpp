// The filesystem contract the request engine dispatches to. The engine has already copied the request out of
// guest memory, checked lengths against the op table and validated names and paths (docs/protocol.md); a
// backend never sees the transport. Every method returns 0 or a negative errno; nothing may throw.
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol.hpp"

namespace xenfs {

// A list of byte ranges: guest pages mapped for this request, the inline payload, or a stream buffer. The
// memory may be guest-writable and change under us: read it once, never validate-then-reuse.
struct IoSpan {
  const iovec* iov = nullptr;
  int iovcnt = 0;
  size_t len = 0;  // total bytes across iov (for output: the capacity the guest granted)
};

// One decoded request. name1/name2 point into dom0-private copies; in/out are the data payload and the
// output buffer (empty when the op has none).
struct Call {
  const proto::Request& req;
  std::string_view name1;
  std::string_view name2;
  IoSpan in;
  IoSpan out;
};

// Per-guest limits a backend enforces (the engine enforces ring, grant and byte limits).
struct BackendLimits {
  uint32_t max_nodes = 65536;    // nodes the guest holds lookups on (each pins an O_PATH fd)
  uint32_t max_handles = 4096;   // open files and directories
  uint32_t max_xattr_size = 65536;
  // Largest size a guest may grow a file to, by write, fallocate or truncate (-EFBIG beyond, like RLIMIT_FSIZE).
  // A cap per file, not a quota: limiting a guest's total disk use is the export filesystem's job (project quotas).
  uint64_t max_file_size = uint64_t{1} << 40;
};

// Guest ids ↔ host ids, as a user namespace maps them: each range maps `count` ids from `guest` on to `host`.
// Empty lists map every id to itself.
struct IdRange {
  uint32_t guest = 0, host = 0, count = 0;
};

struct IdMap {
  std::vector<IdRange> uids, gids;
  static constexpr uint32_t kOverflow = 65534;  // what an unmapped host id looks like to the guest ("nobody")

  uint32_t uid_to_guest(uint32_t host) const { return to_guest(uids, host); }
  uint32_t gid_to_guest(uint32_t host) const { return to_guest(gids, host); }
  // False when the guest id has no host id: the caller answers -EINVAL, as chown(2) does in a user namespace.
  bool uid_to_host(uint32_t guest, uint32_t& host) const { return to_host(uids, guest, host); }
  bool gid_to_host(uint32_t guest, uint32_t& host) const { return to_host(gids, guest, host); }

 private:
  static uint32_t to_guest(const std::vector<IdRange>& m, uint32_t host) {
    if (m.empty()) return host;
    for (const auto& r : m)
      if (host >= r.host && host - r.host < r.count) return r.guest + (host - r.host);
    return kOverflow;
  }
  static bool to_host(const std::vector<IdRange>& m, uint32_t guest, uint32_t& host) {
    if (m.empty()) {
      host = guest;
      return true;
    }
    for (const auto& r : m)
      if (guest >= r.guest && guest - r.guest < r.count) {
        host = r.host + (guest - r.guest);
        return true;
      }
    return false;
  }
};

// The file behind an open handle and how it was opened: what the server-wide lock table needs of a handle.
struct LockTarget {
  uint64_t dev = 0, ino = 0;
  bool readable = false, writable = false;
};

// An inode as the host names it, for what dom0 keeps across guests (invalidation.hpp).
struct InodeKey {
  uint64_t dev = 0, ino = 0;
  bool operator==(const InodeKey&) const = default;
};

// Told of every node a backend starts or stops keeping, export roots included, with the inode behind it. Called
// with the backend's node lock held: it must not call back into the backend, and must not throw.
class NodeWatcher {
 public:
  virtual ~NodeWatcher() = default;
  virtual void node_added(uint64_t id, const InodeKey& key) noexcept = 0;
  virtual void node_dropped(uint64_t id, const InodeKey& key) noexcept = 0;
};

class FileBackend {
 public:
  virtual ~FileBackend() = default;

  virtual int lookup(const Call& c, proto::Response& r) = 0;
  virtual int walk(const Call& c, proto::Response& r) = 0;
  virtual int forget(const Call& c, proto::Response& r) = 0;
  virtual int getattr(const Call& c, proto::Response& r) = 0;
  virtual int setattr(const Call& c, proto::Response& r) = 0;
  virtual int readlink(const Call& c, proto::Response& r) = 0;
  virtual int open(const Call& c, proto::Response& r) = 0;
  virtual int create(const Call& c, proto::Response& r) = 0;
  virtual int read(const Call& c, proto::Response& r) = 0;
  virtual int write(const Call& c, proto::Response& r) = 0;
  virtual int flush(const Call& c, proto::Response& r) = 0;
  virtual int fsync(const Call& c, proto::Response& r) = 0;
  virtual int release(const Call& c, proto::Response& r) = 0;
  virtual int opendir(const Call& c, proto::Response& r) = 0;
  virtual int readdir(const Call& c, proto::Response& r) = 0;
  virtual int mkdir(const Call& c, proto::Response& r) = 0;
  virtual int unlink(const Call& c, proto::Response& r) = 0;
  virtual int rmdir(const Call& c, proto::Response& r) = 0;
  virtual int rename(const Call& c, proto::Response& r) = 0;
  virtual int symlink(const Call& c, proto::Response& r) = 0;
  virtual int link(const Call& c, proto::Response& r) = 0;
  virtual int statfs(const Call& c, proto::Response& r) = 0;
  virtual int getxattr(const Call& c, proto::Response& r) = 0;
  virtual int setxattr(const Call& c, proto::Response& r) = 0;
  virtual int listxattr(const Call& c, proto::Response& r) = 0;
  virtual int removexattr(const Call& c, proto::Response& r) = 0;
  virtual int fallocate(const Call& c, proto::Response& r) = 0;
  virtual int access(const Call& c, proto::Response& r) = 0;
  virtual int mknod(const Call& c, proto::Response& r) = 0;

  // FUSE passthrough (docs/native-frontend.md). The kernel shares one backing file among all passthrough opens of
  // an inode on a connection, so registrations are per file: `backing_key` names the file behind handle `fh`
  // (-errno for a directory or anything but a regular file). `may_write` says whether the guest may write it: a
  // writable handle, or a reopen for writing that succeeds under the guest's identity (the caller sets it) on a
  // writable export. `backing_fd` is the descriptor to register (the caller closes it; -EACCES for a writable one
  // on an export whose writes dom0 must see): the kernel reopens a backing file by its path with the guest's open
  // flags, so a file the guest may only read is backed through a read-only mount of its export, where no flag a
  // guest front end sets can write.
  struct BackingKey {
    uint64_t dev = 0, ino = 0;
    uint32_t exp = 0;
    bool operator==(const BackingKey&) const = default;
  };
  virtual int backing_key(uint64_t fh, BackingKey& out) = 0;
  virtual bool may_write(uint64_t fh) = 0;
  virtual int backing_fd(uint64_t fh, bool writable) = 0;
  // The file handle `fh` is open on, for locks taken through it (-EBADF for a handle the guest does not hold).
  virtual int lock_target(uint64_t fh, LockTarget& out) = 0;
  // Called once when the guest goes away: close every node and handle it held.
  virtual void release_all() = 0;
  // For cache invalidation across guests: the inode behind a node, an open handle, or a name in a directory node
  // (looked at, never followed, never kept). 0 or -errno.
  virtual int node_inode(uint64_t node, InodeKey& out) const = 0;
  virtual int handle_inode(uint64_t fh, InodeKey& out) const = 0;
  virtual int entry_inode(uint64_t dir, std::string_view name, InodeKey& out) const = 0;
  // For change events (change-events.hpp): where a node, or the file behind an open handle, is now — its export
  // (an index into the guest's exports) and its path relative to that export's root ('' for the root itself),
  // as the kernel names it — with its attributes. -ENOENT once it has no name any more, -EXDEV when the kernel's
  // name for it is not beneath its export root (the root was moved on dom0), -errno otherwise.
  virtual int node_location(uint64_t node, uint32_t& exp, std::string& path, struct stat& st) const = 0;
  virtual int handle_location(uint64_t fh, uint32_t& exp, std::string& path, struct stat& st) const = 0;
  // The attributes of a name in a directory node, not following a symlink. 0 or -errno.
  virtual int entry_stat(uint64_t dir, std::string_view name, struct stat& out) const = 0;
  // Reports nodes to `w` from now on, first replaying every node held now; nullptr (or another watcher) first
  // reports every node held as dropped to the previous one. The watcher must outlive its watch.
  virtual void watch_nodes(NodeWatcher* w) = 0;
  // The guest's export roots are nodes 1..root_count().
  virtual uint32_t root_count() const = 0;
  // Open handles and nodes, for status and tests.
  virtual uint32_t handle_count() const = 0;
  virtual uint32_t node_count() const = 0;
};

}  // namespace xenfs

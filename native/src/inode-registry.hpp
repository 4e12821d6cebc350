// Process-wide tables that let one guest's change reach the others' FUSE caches (invalidation.hpp): which attached
// connections hold a node for an inode, and which sessions have an inode open for writing. Both are sharded by
// inode, so guests working on different files do not meet on a lock; neither ever calls out while holding one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "attached-fuse.hpp"
#include "file-backend.hpp"

namespace xenfs {

// inode (dev, ino) → the (connection, dom0 node id) pairs of sessions with an attached FUSE connection that hold
// lookups on a node for it: exactly the nodes those guests' kernels may cache.
class InodeRegistry {
 public:
  struct Holder {
    std::shared_ptr<AttachedFuse> conn;
    uint64_t node = 0;
  };

  static InodeRegistry& shared();

  // Maintained by each attached session's node watcher. Must not throw: out of memory, the entry is lost and that
  // node's changes go unannounced to its guest.
  void add(const InodeKey& key, const std::shared_ptr<AttachedFuse>& conn, uint64_t node) noexcept;
  void remove(const InodeKey& key, const AttachedFuse* conn, uint64_t node) noexcept;
  // Appends every holder of `key` except the nodes of `self` (which may be null).
  void holders(const InodeKey& key, const AttachedFuse* self, std::vector<Holder>& out) const;

  // Attached connections in the process: when none but the caller's own is, a change owes nobody anything.
  void connection_added() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_removed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  int connections() const { return connections_.load(std::memory_order_relaxed); }

 private:
  struct KeyHash {
    size_t operator()(const InodeKey& k) const noexcept;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<InodeKey, std::vector<Holder>, KeyHash> map;
  };
  static constexpr size_t kShards = 32;
  const Shard& shard(const InodeKey& k) const { return shards_[KeyHash{}(k) % kShards]; }
  Shard& shard(const InodeKey& k) { return shards_[KeyHash{}(k) % kShards]; }

  Shard shards_[kShards];
  std::atomic<int> connections_{0};
};

// ino → the sessions holding it open for writing, with their handle counts. Keyed by inode number alone, so a
// reply can be checked from its attributes (which carry no device): two files of one number on two filesystems
// only cost each other some caching.
class WriterTable {
 public:
  static WriterTable& shared();

  // Out of memory, add() counts nothing and answers false; the caller then must not remove().
  bool add(uint64_t ino, uint64_t session) noexcept;
  // True when that was `session`'s last writable handle on `ino`.
  bool remove(uint64_t ino, uint64_t session) noexcept;
  // Some session other than `session` has `ino` open for writing. Lock-free while nobody writes anything.
  bool others(uint64_t ino, uint64_t session) const;

 private:
  struct Writer {
    uint64_t session = 0;
    uint32_t handles = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, std::vector<Writer>> map;
  };
  static constexpr size_t kShards = 16;
  Shard shards_[kShards];
  std::atomic<uint64_t> inodes_{0};  // entries across shards
};

}  // namespace xenfs

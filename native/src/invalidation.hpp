// Keeping the other guests' FUSE caches coherent with what one guest changes (docs/native-frontend.md, "Coherent
// caching"). A guest with an attached FUSE connection lets its kernel keep entries and attributes for long; after
// each change another guest makes through dom0, dom0 pushes FUSE_NOTIFY_INVAL_ENTRY / _INVAL_INODE to every such
// guest that holds the nodes concerned, and while any guest has a file open for writing (its writes may go
// straight to the backing file, never through dom0) the others' replies about that file say kRspVolatile.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "attached-fuse.hpp"
#include "file-backend.hpp"
#include "request-engine.hpp"

namespace xenfs {

// The longest a changing call waits for the invalidations it owes other guests before its reply goes out.
// Normally they are written within microseconds, so the others see the change before the changer's call returns.
// But the kernel takes the directory's lock to drop a name, and another guest's kernel may hold that lock while
// it waits for dom0, possibly for a change of its own that waits in turn for this one: the bound breaks the
// cycle, and the notifications follow as soon as the lock is free.
constexpr std::chrono::milliseconds kInvalidationWait{50};
// A wait that finds the other guest's notifier blocked, and that guest's own session waiting too, is a cycle
// (each guest's kernel holds a lock the other's notification needs) and ends once the notifier has been blocked
// this long, instead of both sides sitting out the whole bound.
constexpr std::chrono::milliseconds kCycleCheck{1};

class Notices;

// One session's share: its node watch (what its attached connection holds, in the process-wide InodeRegistry),
// its writable handles (in the WriterTable), and the notices its changes owe the others. Thread-safe.
class Invalidation final : public NodeWatcher {
 public:
  explicit Invalidation(FileBackend& backend);
  ~Invalidation() override;
  Invalidation(const Invalidation&) = delete;
  Invalidation& operator=(const Invalidation&) = delete;

  // The session's FUSE connection: its nodes (export roots included) are registered from now on, so the others'
  // changes reach its guest. attach() at most once before detach(); both from one thread at a time.
  void attach(const std::shared_ptr<AttachedFuse>& conn);
  void detach();
  // The guest is gone and its handles with it: drops its writers, telling the others (without waiting).
  void end();

  void node_added(uint64_t id, const InodeKey& key) noexcept override;
  void node_dropped(uint64_t id, const InodeKey& key) noexcept override;

 private:
  friend class InvalidationCall;
  friend class Notices;
  struct Writable {
    InodeKey key;
    bool dirty = false;  // written through dom0 since the last flush
  };
  using Victims = std::optional<InodeKey>[2];

  bool others_attached();
  std::shared_ptr<AttachedFuse> self();
  void after(const Call& c, proto::Response& rsp, const Victims& victims);
  void opened(const proto::Request& q, const proto::Response& rsp, Notices& n);
  void flushed(uint64_t fh, bool release, Notices& n);

  FileBackend& backend_;
  const uint64_t id_;  // this session, in the WriterTable
  std::shared_ptr<AttachedFuse> watched_;  // changed only while no watch is on, read by the watcher callbacks
  std::mutex mu_;
  std::shared_ptr<AttachedFuse> conn_;
  std::unordered_map<uint64_t, Writable> writable_;  // by handle
};

// The invalidation side of one request (execute's CallHooks): before a removal or rename, notes the inodes about
// to lose a name; after a success, marks the reply volatile where due, keeps the writer table, and delivers what
// the other guests' caches must drop, waiting at most kInvalidationWait.
class InvalidationCall final : public CallHooks {
 public:
  explicit InvalidationCall(Invalidation& inv) : inv_(inv) {}
  void before(const Call& c) override;
  void after(const Call& c, proto::Response& rsp) override;

 private:
  Invalidation& inv_;
  Invalidation::Victims victims_;
};

}  // namespace xenfs

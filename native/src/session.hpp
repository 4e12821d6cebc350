// A guest's connection to the dom0 server: a thread that takes requests off its transport (a shared ring in the
// guest's memory, or a byte stream), runs fast ones itself and hands the ones that may block to the worker pool,
// and sends back the responses. One per guest; a failure in one never touches another.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "attached-fuse.hpp"
#include "change-events.hpp"
#include "file-backend.hpp"
#include "grant-table.hpp"
#include "invalidation.hpp"
#include "lock-table.hpp"
#include "protocol.hpp"
#include "request-engine.hpp"
#include "shared-ring.hpp"

namespace xenfs {

struct SessionLimits {
  uint64_t max_bytes_in_flight = 16u << 20;  // data handed to the pool and not yet answered
  uint32_t max_mapped_grants = 8192;
  // Most microseconds the ring thread polls for more requests before sleeping. The poll adapts within it, as
  // KVM's halt polling does: it grows while sleeps turn out shorter than the limit (a wake-up would have cost more
  // than the poll) and shrinks when polling finds nothing, so an idle guest costs no CPU.
  uint32_t spin_us = 200;
  // The host identity dom0 takes on for this guest's filesystem calls (setfsuid/setfsgid, per thread), so the
  // kernel checks permissions and assigns ownership as it would for that user. Off: dom0 acts as itself.
  bool act_as = false;
  uint32_t fs_uid = 0, fs_gid = 0;
  LockCaps locks;  // file locks held and lock requests waiting (-ENOLCK beyond)
};

// Takes on a guest's host identity for one filesystem call on this thread, and gives it back.
class FsIdentity {
 public:
  explicit FsIdentity(const SessionLimits& l);
  ~FsIdentity();
  FsIdentity(const FsIdentity&) = delete;
  FsIdentity& operator=(const FsIdentity&) = delete;

 private:
  bool active_;
  int old_uid_ = 0, old_gid_ = 0;
};

// Drops this thread's supplementary groups: dom0's threads act for guests, and a guest must not inherit root's
// groups when it acts under its own uid.
void drop_thread_groups();

struct SessionStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> pooled{0};  // requests served on the worker pool
  std::atomic<uint64_t> wakeups{0};
  std::atomic<uint64_t> notifies{0};
  std::atomic<uint32_t> in_flight{0};
  std::atomic<uint64_t> bytes_in_flight{0};
  std::atomic<uint64_t> bytes_read{0};     // file data served through dom0 (READ replies)
  std::atomic<uint64_t> bytes_written{0};  // file data written through dom0 (WRITE replies)
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // Called once from the session's thread when it ends on its own: `violation` false for a peer that went away.
  using ViolationFn = std::function<void(bool violation, const std::string& reason)>;
  Session(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits);
  virtual ~Session();

  void start(ViolationFn on_violation);
  // Stops the thread, waits for the guest's pool work to finish, then closes every handle and node it held.
  // Idempotent. Must not be called from the session's own thread.
  void stop();

  const SessionStats& stats() const { return stats_; }
  FileBackend& backend() { return *backend_; }

  // The guest's FUSE connection (its /dev/fuse descriptor, mounted in the guest), through which dom0 registers
  // backing files for the guest's opens and pushes invalidations (invalidation.hpp). `root` is the export root the
  // guest mounted it on (its FUSE_ROOT_ID). Keeps its own duplicate of `fd`, for this session only: stop() lets go
  // of it, so a departed guest's connection is not kept alive by dom0. 0, or -ENODEV for a descriptor that is not
  // /dev/fuse, -EINVAL for a root that is not one of the guest's export roots, -EBUSY when one is attached
  // already, -errno otherwise.
  int attach_fuse(int fd, uint64_t root);
  // Reports this guest's changes to `source.log` from now on (change-events.hpp). Before start(), once.
  void report_events(EventSource source);
  uint64_t events_lost() const { return events_ ? events_->lost() : 0; }
  bool fuse_attached();
  uint32_t backing_files();  // registered on the attached connection and not yet released
  virtual uint32_t mapped_grants() const { return 0; }

 protected:
  virtual void run() = 0;
  // `ext` is the out-of-slot payload a stream carried (empty for rings, whose payload sits in granted pages).
  virtual void process(const proto::Request& req, const OpSpec& spec, const std::vector<uint8_t>& ext) = 0;
  virtual void respond(const proto::Response& rsp, const uint8_t* data, size_t len) = 0;
  virtual void wake() = 0;  // makes run() notice stopping_

  // Checks the header and runs the request here or on the pool (see RunOn). `alone`: the guest has published
  // nothing after this request, so serving it here holds up nothing else of its.
  void dispatch(const proto::Request& req, bool alone, std::vector<uint8_t> ext = {});
  void answer_error(const proto::Request& req, int status);
  void violation(const std::string& reason);
  void ended(const std::string& reason);
  void finish(const proto::Request& req, const OpSpec& spec, proto::Response& rsp, const uint8_t* data);
  // Runs a request against the backend as the guest's host identity, with the cache-invalidation and change-event
  // hooks around it.
  void call_backend(const proto::Request& req, const OpSpec& spec, IoSpan payload, IoSpan out, proto::Response& rsp);

  std::unique_ptr<FileBackend> backend_;
  Invalidation inval_{*backend_};  // after backend_: it watches the backend's nodes until it is destroyed
  std::unique_ptr<ChangeEvents> events_;
  uint32_t features_;
  SessionLimits limits_;
  SessionStats stats_;
  std::atomic<bool> stopping_{false};

 private:
  bool pool_idle();  // nothing of this guest's is on the worker pool
  void detach_fuse();
  // File locks (session-locks.cpp), on the session's thread before anything else sees the request: GETLK, SETLK
  // and INTERRUPT are served against the server-wide LockTable (true: answered, or left waiting there); a FLUSH
  // or RELEASE first drops the locks it lets go of, then goes on as any request (false).
  bool serve_locks(const proto::Request& req);
  int lock_op(const proto::Request& req, proto::Response& rsp);
  void drop_released_locks(const proto::Request& req);
  // Answers a request that was left waiting, from any thread: through the worker pool, so that whoever granted it
  // never waits on this guest's transport. Nothing once stop() has begun.
  void complete_later(uint64_t id, int status);
  // Called after every successful request. An OPEN/CREATE that asked for it gets its file's backing registration
  // (rsp.backing_id), shared with the guest's other open handles of that file; a RELEASE drops the handle's share;
  // anything else is left alone.
  void track_backing(const proto::Request& req, proto::Response& rsp);
  void register_backing(uint64_t fh, proto::Response& rsp);

  struct BackingKeyHash {
    size_t operator()(const FileBackend::BackingKey& k) const noexcept {
      return std::hash<uint64_t>()(k.ino * 0x9e3779b97f4a7c15ULL ^ k.dev ^ (uint64_t{k.exp} << 48));
    }
  };
  // One registration per file: the kernel refuses a second backing file for an inode with passthrough opens.
  struct Backing {
    int id = 0;
    uint32_t handles = 0;
  };
  std::mutex fuse_mu_;
  std::shared_ptr<AttachedFuse> fuse_;
  std::unordered_map<FileBackend::BackingKey, Backing, BackingKeyHash> backing_;
  std::unordered_map<uint64_t, FileBackend::BackingKey> backing_by_fh_;

  std::thread thread_;
  ViolationFn on_violation_;
  std::mutex flight_mu_;
  std::condition_variable flight_cv_;
  uint32_t pool_tasks_ = 0;
  bool stopped_ = false;
};

struct RingSetup {
  int mem_fd = -1;
  uint32_t mem_pages = 0;
  size_t grant_table_offset = 0;
  uint32_t grant_entries = 0;
  std::vector<uint32_t> ring_refs;
  uint32_t ring_slots = 0;
  int evt_rx = -1;  // guest → dom0 (dup'ed)
  int evt_tx = -1;  // dom0 → guest (dup'ed)
};

class RingSession final : public Session {
 public:
  // Throws std::runtime_error with a reason fit for a log line when the guest's setup is unusable.
  RingSession(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits, const RingSetup& setup);
  ~RingSession() override;
  uint32_t mapped_grants() const override { return mapper_->mapped(); }

 private:
  void run() override;
  void process(const proto::Request& req, const OpSpec& spec, const std::vector<uint8_t>& ext) override;
  void respond(const proto::Response& rsp, const uint8_t* data, size_t len) override;
  void wake() override;
  bool spin_for_requests();
  void sleep_for_requests();
  // Builds iovecs over the request's pages from the persistent-grant cache, mapping (and keeping) any reference
  // seen for the first time. 0 or -errno.
  int map_persistent(const proto::Request& req, size_t bytes, std::vector<iovec>& iov);

  std::unique_ptr<GrantMapper> mapper_;
  GrantMapping ring_map_;
  std::unique_ptr<BackRingCore> ring_;
  uint32_t slots_;
  int evt_rx_, evt_tx_, stop_fd_;
  uint32_t poll_ns_ = 0;  // current adaptive poll window, <= spin_us
  std::mutex rsp_mu_;
  std::mutex persistent_mu_;
  std::vector<uint8_t*> persistent_;            // page address by grant reference; nullptr = not mapped yet
  std::vector<GrantMapping> persistent_maps_;  // the mappings behind those addresses, unmapped at teardown
};

class StreamSession final : public Session {
 public:
  StreamSession(std::unique_ptr<FileBackend> backend, uint32_t features, SessionLimits limits, int fd);
  ~StreamSession() override;

 private:
  void run() override;
  void process(const proto::Request& req, const OpSpec& spec, const std::vector<uint8_t>& ext) override;
  void respond(const proto::Response& rsp, const uint8_t* data, size_t len) override;
  void wake() override;
  bool read_more(std::vector<uint8_t>& buf, size_t& have);

  int fd_, stop_fd_;
  std::mutex write_mu_;
};

}  // namespace xenfs

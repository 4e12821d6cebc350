// The native guest front end (docs/native-frontend.md): one thread per mount reads FUSE requests from the
// guest's /dev/fuse, puts each on the guest's shared ring to dom0 as a XenFS request, and writes dom0's answer
// back as the FUSE reply. No JavaScript runs per request; core/frontend/native-mount.ts sets the thread up, hands
// it a ring after every (re)connection and supervises it.
//
// FUSE node ids are dom0's node ids for this guest's session, except that the mounted export's root R and
// FUSE_ROOT_ID (1) trade places: the kernel insists on 1 for the root, and dom0 numbers its export roots 1..n.
// dom0 applies the same swap when it pushes invalidations, so both sides name every inode alike.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol.hpp"
#include "shared-ring.hpp"

namespace xenfs {

// Where one connection's ring lives, as core/ring/guest-ring.ts laid it out: the guest's memory (a memfd), the
// ring inside it, and tag t's data buffer at page data_frame0 + 32 t, granted to dom0 once (persistent grants) as
// references data_ref0 + 32 t onwards. The front end maps and duplicates what it needs; the caller keeps its own.
struct RingLink {
  int mem_fd = -1;
  uint32_t mem_pages = 0;
  uint32_t ring_offset = 0;  // bytes, page-aligned
  uint32_t slots = 0;
  uint32_t data_frame0 = 0;
  uint32_t data_ref0 = 0;
  int rx_fd = -1;  // dom0 → guest notifications
  int tx_fd = -1;  // guest → dom0
  uint64_t root = 0;  // dom0's node id of the mounted export's root in this session
};

struct FrontendConfig {
  int fuse_fd = -1;          // mounted and INIT answered; duplicated
  bool passthrough = false;  // negotiated: ask dom0 for backing files at open
  uint32_t max_write = proto::kMaxData;
  uint32_t entry_timeout_ms = 0;
  uint32_t attr_timeout_ms = 0;
  uint32_t wait_ms = 10000;  // how long requests wait for dom0 while no ring is attached, then EIO
  uint32_t poll_us = 50;     // spin for a response this long before sleeping on the event channel
};

struct FrontendStats {
  uint64_t requests = 0;           // FUSE requests read
  uint64_t forwarded = 0;          // XenFS requests put on a ring
  uint64_t data_requests = 0;      // READ and WRITE among them: zero while every open is passthrough
  uint64_t passthrough_opens = 0;  // OPEN/CREATE answered with a backing file
  uint64_t direct_opens = 0;       // answered without one: data goes through dom0
  uint64_t failed_disconnected = 0;
  uint64_t attaches = 0;
  uint32_t in_flight = 0;
  bool attached = false;
};

class FuseFrontend {
 public:
  // Called once, from the front end's thread, when it stops serving: err 0 after stop() or an unmount.
  using ExitFn = std::function<void(int err, const std::string& why)>;

  // Starts the thread; 0 or -errno with `why`.
  static int start(const FrontendConfig& cfg, ExitFn on_exit, std::unique_ptr<FuseFrontend>& out, std::string& why);
  ~FuseFrontend();  // stops and joins
  FuseFrontend(const FuseFrontend&) = delete;
  FuseFrontend& operator=(const FuseFrontend&) = delete;

  // Hands the thread a fresh connection's ring (nothing may be outstanding on it). 0 or -errno with `why`.
  int attach(const RingLink& link, std::string& why);
  // dom0 went away: requests in flight fail with EIO, new ones wait up to wait_ms for the next attach.
  void detach();
  void stop();
  FrontendStats stats() const;

  struct Link;  // a mapped ring (fuse-frontend.cpp)

 private:
  explicit FuseFrontend(const FrontendConfig& cfg, ExitFn on_exit);
  void run();
  void wake();

  FrontendConfig cfg_;
  ExitFn on_exit_;
  int wake_fd_ = -1;
  std::thread thread_;

  // The mailbox between the JavaScript thread and the front end's thread.
  std::mutex mu_;
  std::unique_ptr<Link> incoming_;
  bool detach_requested_ = false;
  bool stop_requested_ = false;

  // Written by the front end's thread only; read by stats() from any thread.
  struct Counters {
    std::atomic<uint64_t> requests{0}, forwarded{0}, data_requests{0}, passthrough_opens{0}, direct_opens{0},
        failed_disconnected{0}, attaches{0};
    std::atomic<uint32_t> in_flight{0};
    std::atomic<bool> attached{false};
  } counters_;
  friend class FrontendLoop;
};

}  // namespace xenfs

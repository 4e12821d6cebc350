#include "shared-ring.hpp"

namespace xenfs {

namespace {
// xen_mb(): a full barrier; the store of an index must be visible before the load of the other side's event index.
inline void full_barrier() { std::atomic_thread_fence(std::memory_order_seq_cst); }
}  // namespace

void FrontRingCore::init() {
  idx_->req_prod.store(0, std::memory_order_relaxed);
  idx_->rsp_prod.store(0, std::memory_order_relaxed);
  idx_->req_event.store(1, std::memory_order_relaxed);
  idx_->rsp_event.store(1, std::memory_order_relaxed);
  req_prod_pvt_ = 0;
  rsp_cons_ = 0;
  full_barrier();
}

bool FrontRingCore::resume() {
  uint32_t req = idx_->req_prod.load(std::memory_order_acquire);
  uint32_t rsp = idx_->rsp_prod.load(std::memory_order_acquire);
  if (req != rsp) return false;
  req_prod_pvt_ = req;
  rsp_cons_ = rsp;
  return true;
}

bool FrontRingCore::push_requests() {
  uint32_t old_prod = idx_->req_prod.load(std::memory_order_relaxed);
  uint32_t new_prod = req_prod_pvt_;
  idx_->req_prod.store(new_prod, std::memory_order_release);  // xen_wmb: slots before the index
  full_barrier();
  uint32_t event = idx_->req_event.load(std::memory_order_relaxed);
  return static_cast<uint32_t>(new_prod - event) < static_cast<uint32_t>(new_prod - old_prod);
}

uint32_t FrontRingCore::unconsumed_responses() const {
  uint32_t prod = idx_->rsp_prod.load(std::memory_order_acquire);
  uint32_t n = prod - rsp_cons_;
  // dom0 is trusted, but a bound keeps a corrupt index from walking us off the ring.
  uint32_t limit = req_prod_pvt_ - rsp_cons_;
  return n < limit ? n : limit;
}

bool FrontRingCore::final_check_for_responses() {
  if (unconsumed_responses()) return true;
  idx_->rsp_event.store(rsp_cons_ + 1, std::memory_order_relaxed);
  full_barrier();
  return unconsumed_responses() != 0;
}

int64_t BackRingCore::unconsumed_requests() const {
  uint32_t prod = idx_->req_prod.load(std::memory_order_acquire);  // read once: the guest may change it any time
  if (static_cast<uint32_t>(prod - rsp_prod_pvt_) > size_) return -1;
  uint32_t req = prod - req_cons_;
  uint32_t rsp = size_ - (req_cons_ - rsp_prod_pvt_);
  return req < rsp ? req : rsp;
}

bool BackRingCore::push_responses() {
  uint32_t old_prod = idx_->rsp_prod.load(std::memory_order_relaxed);
  uint32_t new_prod = rsp_prod_pvt_;
  idx_->rsp_prod.store(new_prod, std::memory_order_release);
  full_barrier();
  uint32_t event = idx_->rsp_event.load(std::memory_order_relaxed);
  return static_cast<uint32_t>(new_prod - event) < static_cast<uint32_t>(new_prod - old_prod);
}

int64_t BackRingCore::final_check_for_requests() {
  int64_t n = unconsumed_requests();
  if (n != 0) return n;
  idx_->req_event.store(req_cons_ + 1, std::memory_order_relaxed);
  full_barrier();
  return unconsumed_requests();
}

}  // namespace xenfs

// Xen io/ring.h shared rings: one header page region followed by power-of-two 512-byte slots that requests
// and responses share. The front end (guest) produces requests and consumes responses; the back end (dom0)
// does the opposite. Index fields are free-running u32 counters, as in Xen.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "protocol.hpp"

namespace xenfs {

struct RingIndices {
  std::atomic<uint32_t> req_prod;
  std::atomic<uint32_t> req_event;
  std::atomic<uint32_t> rsp_prod;
  std::atomic<uint32_t> rsp_event;
};
static_assert(sizeof(RingIndices) == 16, "ring indices match io/ring.h");

inline bool ring_size_ok(uint32_t slots) { return slots >= 8 && slots <= 256 && (slots & (slots - 1)) == 0; }
inline size_t ring_bytes(uint32_t slots) { return proto::kRingHeaderSize + size_t{slots} * proto::kSlotSize; }

// Guest side.
class FrontRingCore {
 public:
  FrontRingCore(uint8_t* base, uint32_t slots) : idx_(reinterpret_cast<RingIndices*>(base)),
      slots_(base + proto::kRingHeaderSize), size_(slots) {}
  // SHARED_RING_INIT + FRONT_RING_INIT.
  void init();
  // Takes over a ring another front end initialised and left idle (every request answered): the private
  // indices resume from the shared ones. False when requests are still outstanding there.
  bool resume();
  uint32_t free_requests() const { return size_ - (req_prod_pvt_ - rsp_cons_); }
  uint8_t* request_slot() { return slots_ + size_t{req_prod_pvt_ & (size_ - 1)} * proto::kSlotSize; }
  void advance_request() { req_prod_pvt_++; }
  // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: true when the back end asked to be woken for these requests.
  bool push_requests();
  uint32_t unconsumed_responses() const;
  const uint8_t* response_slot() const { return slots_ + size_t{rsp_cons_ & (size_ - 1)} * proto::kSlotSize; }
  void consume_response() { rsp_cons_++; }
  // RING_FINAL_CHECK_FOR_RESPONSES: re-arms rsp_event and says whether responses slipped in meanwhile.
  bool final_check_for_responses();
  uint32_t outstanding() const { return req_prod_pvt_ - rsp_cons_; }

 private:
  RingIndices* idx_;
  uint8_t* slots_;
  uint32_t size_;
  uint32_t req_prod_pvt_ = 0;
  uint32_t rsp_cons_ = 0;
};

// dom0 side. Everything the guest wrote is read once into locals before it is checked.
class BackRingCore {
 public:
  BackRingCore(uint8_t* base, uint32_t slots) : idx_(reinterpret_cast<RingIndices*>(base)),
      slots_(base + proto::kRingHeaderSize), size_(slots) {}
  // Requests ready to take, or -1 when the guest's req_prod claims more than the ring holds (RING_REQUEST_PROD_OVERFLOW:
  // a protocol violation).
  int64_t unconsumed_requests() const;
  // RING_COPY_REQUEST: the slot is copied before anything in it is looked at.
  void copy_request(proto::Request& dst) {
    std::memcpy(&dst, slots_ + size_t{req_cons_ & (size_ - 1)} * proto::kSlotSize, proto::kSlotSize);
    req_cons_++;
  }
  uint8_t* response_slot() { return slots_ + size_t{rsp_prod_pvt_ & (size_ - 1)} * proto::kSlotSize; }
  void advance_response() { rsp_prod_pvt_++; }
  bool push_responses();
  // RING_FINAL_CHECK_FOR_REQUESTS; -1 on overflow.
  int64_t final_check_for_requests();
  uint32_t in_service() const { return req_cons_ - rsp_prod_pvt_; }

 private:
  RingIndices* idx_;
  uint8_t* slots_;
  uint32_t size_;
  uint32_t rsp_prod_pvt_ = 0;
  uint32_t req_cons_ = 0;
};

}  // namespace xenfs

// FrontRing: the guest's end of a shared ring, over a region of its own GuestMemory.
// `new FrontRing(memory, offsetBytes, slots)` initialises the shared header; `pushPublish(slot)` copies one
// 512-byte request into the next free slot and publishes it at once (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY):
// 0 ring full, 1 pushed, 2 pushed and dom0 asked to be notified; `takeInto(buf)` copies as many unconsumed
// responses as fit into the caller's buffer and returns how many (no allocation);
// `finalCheck()` re-arms rsp_event and says whether responses slipped in; `poll(us)` spins up to `us`
// microseconds for a response before the caller goes to sleep on the event channel.
#pragma once

#include <napi.h>

#include <memory>

#include "shared-ring.hpp"

namespace xenfs {

class FrontRing : public Napi::ObjectWrap<FrontRing> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FrontRing(const Napi::CallbackInfo& info);

 private:
  Napi::Value PushPublish(const Napi::CallbackInfo& info);
  Napi::Value TakeInto(const Napi::CallbackInfo& info);
  Napi::Value FinalCheck(const Napi::CallbackInfo& info);
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value Outstanding(const Napi::CallbackInfo& info);

  std::unique_ptr<FrontRingCore> core_;
  Napi::ObjectReference memory_;
};

}  // namespace xenfs

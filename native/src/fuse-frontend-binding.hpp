// FuseFrontend: the JavaScript handle on one native front end thread (fuse-frontend.hpp).
//   new FuseFrontend({ fd, passthrough, maxWrite?, entryTimeoutMs?, attrTimeoutMs?, waitMs?, pollMicros? }, onExit)
//       starts serving the mounted, negotiated /dev/fuse descriptor `fd` (duplicated: the caller keeps its own).
//       onExit(errno, why) runs on the JS thread once the thread stops (errno 0: stopped or unmounted).
//   .attach({ memFd, memPages, ringOffset, slots, dataFrame0, dataRef0, rxFd, txFd, root })
//       hands it a fresh connection's ring; throws with `errno` when the layout is unusable.
//   .detach()  dom0 is gone: in-flight requests fail with EIO, new ones wait up to waitMs for the next attach.
//   .stop()    stops the thread (joined); idempotent. The caller unmounts.
//   .stats()   { requests, forwarded, dataRequests, passthroughOpens, directOpens, failedDisconnected, attaches,
//                inFlight, attached }
#pragma once

#include <napi.h>

#include <memory>

#include "fuse-frontend.hpp"

namespace xenfs {

class FuseFrontendHandle : public Napi::ObjectWrap<FuseFrontendHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FuseFrontendHandle(const Napi::CallbackInfo& info);
  ~FuseFrontendHandle() override;

 private:
  Napi::Value Attach(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  void StopFrontend();

  std::unique_ptr<FuseFrontend> fe_;
  Napi::ThreadSafeFunction on_exit_;
  bool tsfn_live_ = false;
};

}  // namespace xenfs

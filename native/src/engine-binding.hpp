// Engine: the JavaScript handle on one guest's Session (see session.hpp).
//   new Engine(options, onEnd)   options: { transport: 'ring', memFd, memPages, grantTable: {offset, entries},
//                                          ringRefs: number[], ringSlots, evtRxFd, evtTxFd, ... }
//                                        | { transport: 'stream', fd, ... }
//                                plus { exports: [{ path, readOnly }], features, limits: { maxNodes, maxHandles,
//                                       maxXattrSize, maxFileSize, maxMappedGrants, maxBytesInFlight, spinMicros } }
//                                plus, optionally, { identity: { uid, gid } } (host ids dom0 acts as for this guest)
//                                and { idMap: { uid: [{ guest, host, count }], gid: [...] } } (owners as the guest sees them)
//                                The engine dup()s every descriptor it keeps; the caller still owns the ones it passed.
//   onEnd(violation: boolean, reason: string) runs on the JS thread when the session ends by itself.
//   .stop()    stops serving, waits for in-flight work, closes the guest's handles; idempotent.
//   .stats()   { requests, errors, wakeups, notifies, inFlight, bytesInFlight, handles, nodes, mappedGrants }
//   .attachFuse(fd, root)   the guest's FUSE connection, mounted on export root `root` (see session.hpp)
// Also exported: configureWorkers(n) before the first engine starts.
#pragma once

#include <napi.h>

#include <memory>

#include "session.hpp"

namespace xenfs {

class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Engine(const Napi::CallbackInfo& info);
  ~Engine() override;

 private:
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value AttachFuse(const Napi::CallbackInfo& info);
  void StopSession();

  std::shared_ptr<Session> session_;
  Napi::ThreadSafeFunction on_end_;
  bool tsfn_live_ = false;
};

Napi::Value ConfigureWorkers(const Napi::CallbackInfo& info);

}  // namespace xenfs

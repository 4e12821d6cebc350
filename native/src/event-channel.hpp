// Event channels: one eventfd per direction. A notification is a write of 1; the counter coalesces any number of
// notifications into one wake-up. Masking is the receiver's business and lives on its side (Xen keeps the mask bit
// in the receiver's shared_info; no other domain may touch it).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>

namespace xenfs {

int evtchn_create_fd();          // eventfd, non-blocking, close-on-exec; fd or -errno
void evtchn_notify(int fd);      // never blocks
uint64_t evtchn_drain(int fd);   // pending notifications since the last drain (0 if none)

// The JavaScript face: `new EventChannel(rxFd, txFd)`, `.bind(cb)`, `.notify()`, `.mask()`, `.unmask()`,
// `.close()`. The callback runs on the JS thread from a libuv poll on rxFd: no thread spins waiting.
// The channel owns neither fd's lifetime beyond close(): close() closes both.
class EventChannel : public Napi::ObjectWrap<EventChannel> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EventChannel(const Napi::CallbackInfo& info);
  ~EventChannel() override;

 private:
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Notify(const Napi::CallbackInfo& info);
  Napi::Value Mask(const Napi::CallbackInfo& info);
  Napi::Value Unmask(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  void Deliver(uint64_t count);
  void StopPoll();
  static void OnPoll(uv_poll_t* handle, int status, int events);

  int rx_ = -1;
  int tx_ = -1;
  bool masked_ = false;
  uint64_t pending_ = 0;   // notifications that arrived while masked
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
};

}  // namespace xenfs

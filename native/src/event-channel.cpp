#include "event-channel.hpp"

#include "uv-poll.hpp"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace xenfs {

int evtchn_create_fd() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

void evtchn_notify(int fd) {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: the peer has a wake-up pending anyway.
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

uint64_t evtchn_drain(int fd) {
  uint64_t n = 0;
  while (read(fd, &n, sizeof n) < 0) {
    if (errno != EINTR) return 0;
  }
  return n;
}

Napi::Function EventChannel::Define(Napi::Env env) {
  return DefineClass(env, "EventChannel",
                     {InstanceMethod<&EventChannel::Bind>("bind"), InstanceMethod<&EventChannel::Notify>("notify"),
                      InstanceMethod<&EventChannel::Mask>("mask"), InstanceMethod<&EventChannel::Unmask>("unmask"),
                      InstanceMethod<&EventChannel::Close>("close"),
                      InstanceMethod<&EventChannel::Pending>("pending")});
}

EventChannel::EventChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventChannel>(info) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(info.Env(), "EventChannel(rxFd, txFd): two file descriptors expected")
        .ThrowAsJavaScriptException();
    return;
  }
  rx_ = info[0].As<Napi::Number>().Int32Value();
  tx_ = info[1].As<Napi::Number>().Int32Value();
}

EventChannel::~EventChannel() { StopPoll(); }

void EventChannel::StopPoll() { close_poll(poll_); }

void EventChannel::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<EventChannel*>(handle->data);
  if (!self || self->rx_ < 0) return;
  uint64_t n = evtchn_drain(self->rx_);
  if (n == 0 && status >= 0) return;
  Napi::HandleScope scope(self->Env());
  self->Deliver(n);
}

void EventChannel::Deliver(uint64_t count) {
  if (masked_) {
    pending_ += count;
    return;
  }
  if (callback_.IsEmpty()) return;
  Napi::Env env = Env();
  try {
    callback_.Call({Napi::Number::New(env, static_cast<double>(count))});
  } catch (const Napi::Error& e) {
    // An exception in the handler must surface as an uncaught exception, not vanish inside libuv.
    napi_fatal_exception(env, e.Value());
  }
}

Napi::Value EventChannel::Bind(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "bind(callback): a function expected").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  if (rx_ < 0) {
    Napi::Error::New(info.Env(), "event channel is closed").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (!poll_) poll_ = start_poll(info.Env(), rx_, this, UV_READABLE, &EventChannel::OnPoll);
  if (!poll_) Napi::Error::New(info.Env(), "event channel: cannot watch its descriptor").ThrowAsJavaScriptException();
  return info.Env().Undefined();
}

Napi::Value EventChannel::Notify(const Napi::CallbackInfo& info) {
  if (tx_ >= 0) evtchn_notify(tx_);
  return info.Env().Undefined();
}

Napi::Value EventChannel::Mask(const Napi::CallbackInfo& info) {
  masked_ = true;
  return info.Env().Undefined();
}

Napi::Value EventChannel::Unmask(const Napi::CallbackInfo& info) {
  masked_ = false;
  // Xen's evtchn_unmask re-raises an event that arrived while masked; so do we, once, coalesced.
  uint64_t n = pending_;
  pending_ = 0;
  if (rx_ >= 0) n += evtchn_drain(rx_);
  if (n) Deliver(n);
  return info.Env().Undefined();
}

Napi::Value EventChannel::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pending_));
}

Napi::Value EventChannel::Close(const Napi::CallbackInfo& info) {
  StopPoll();
  callback_.Reset();
  if (rx_ >= 0) close(rx_);
  if (tx_ >= 0 && tx_ != rx_) close(tx_);
  rx_ = tx_ = -1;
  return info.Env().Undefined();
}

}  // namespace xenfs

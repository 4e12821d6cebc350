#include "fuse-frontend-binding.hpp"

#include <cerrno>
#include <string>

namespace xenfs {
namespace {

uint32_t u32(const Napi::Object& o, const char* key, uint32_t fallback, bool required = false) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw Napi::TypeError::New(o.Env(), std::string("FuseFrontend: option '") + key + "' is required");
    return fallback;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("FuseFrontend: '") + key + "' must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::RangeError::New(o.Env(), std::string("FuseFrontend: '") + key + "' must be a 32-bit unsigned integer");
  return static_cast<uint32_t>(d);
}

struct ExitEvent {
  int err;
  std::string why;
};

}  // namespace

Napi::Function FuseFrontendHandle::Define(Napi::Env env) {
  return DefineClass(env, "FuseFrontend",
                     {InstanceMethod<&FuseFrontendHandle::Attach>("attach"),
                      InstanceMethod<&FuseFrontendHandle::Detach>("detach"),
                      InstanceMethod<&FuseFrontendHandle::Stop>("stop"),
                      InstanceMethod<&FuseFrontendHandle::Stats>("stats")});
}

FuseFrontendHandle::FuseFrontendHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FuseFrontendHandle>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "FuseFrontend(options, onExit)");
  Napi::Object o = info[0].As<Napi::Object>();
  FrontendConfig cfg;
  cfg.fuse_fd = static_cast<int>(u32(o, "fd", 0, true));
  cfg.passthrough = o.Get("passthrough").ToBoolean();
  cfg.max_write = u32(o, "maxWrite", proto::kMaxData);
  cfg.entry_timeout_ms = u32(o, "entryTimeoutMs", 0);
  cfg.attr_timeout_ms = u32(o, "attrTimeoutMs", 0);
  cfg.wait_ms = u32(o, "waitMs", 10000);
  cfg.poll_us = u32(o, "pollMicros", 50);
  on_exit_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "xenfs-frontend", 0, 1);
  tsfn_live_ = true;
  Napi::ThreadSafeFunction tsfn = on_exit_;
  std::string why;
  // NonBlockingCall: the front end's thread must never wait on the JS thread, which may be joining it in stop().
  int rc = FuseFrontend::start(
      cfg,
      [tsfn](int err, const std::string& reason) mutable {
        auto* ev = new ExitEvent{err, reason};
        if (tsfn.NonBlockingCall(ev, [](Napi::Env env, Napi::Function fn, ExitEvent* data) {
              fn.Call({Napi::Number::New(env, data->err), Napi::String::New(env, data->why)});
              delete data;
            }) != napi_ok)
          delete ev;
      },
      fe_, why);
  if (rc < 0) {
    StopFrontend();
    Napi::Error e = Napi::Error::New(env, why);
    e.Set("errno", Napi::Number::New(env, -rc));
    throw e;
  }
}

FuseFrontendHandle::~FuseFrontendHandle() { StopFrontend(); }

void FuseFrontendHandle::StopFrontend() {
  fe_.reset();  // stops and joins; the exit event is queued before the join returns
  if (tsfn_live_) {
    on_exit_.Release();
    tsfn_live_ = false;
  }
}

Napi::Value FuseFrontendHandle::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "attach(link)");
  if (!fe_) throw Napi::Error::New(env, "FuseFrontend: stopped");
  Napi::Object o = info[0].As<Napi::Object>();
  RingLink l;
  l.mem_fd = static_cast<int>(u32(o, "memFd", 0, true));
  l.mem_pages = u32(o, "memPages", 0, true);
  l.ring_offset = u32(o, "ringOffset", 0, true);
  l.slots = u32(o, "slots", 0, true);
  l.data_frame0 = u32(o, "dataFrame0", 0, true);
  l.data_ref0 = u32(o, "dataRef0", 0, true);
  l.rx_fd = static_cast<int>(u32(o, "rxFd", 0, true));
  l.tx_fd = static_cast<int>(u32(o, "txFd", 0, true));
  l.root = u32(o, "root", 0, true);
  std::string why;
  int rc = fe_->attach(l, why);
  if (rc < 0) {
    Napi::Error e = Napi::Error::New(env, "FuseFrontend.attach: " + why);
    e.Set("errno", Napi::Number::New(env, -rc));
    throw e;
  }
  return env.Undefined();
}

Napi::Value FuseFrontendHandle::Detach(const Napi::CallbackInfo& info) {
  if (fe_) fe_->detach();
  return info.Env().Undefined();
}

Napi::Value FuseFrontendHandle::Stop(const Napi::CallbackInfo& info) {
  StopFrontend();
  return info.Env().Undefined();
}

Napi::Value FuseFrontendHandle::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!fe_) return env.Null();
  FrontendStats s = fe_->stats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("requests", static_cast<double>(s.requests));
  out.Set("forwarded", static_cast<double>(s.forwarded));
  out.Set("dataRequests", static_cast<double>(s.data_requests));
  out.Set("passthroughOpens", static_cast<double>(s.passthrough_opens));
  out.Set("directOpens", static_cast<double>(s.direct_opens));
  out.Set("failedDisconnected", static_cast<double>(s.failed_disconnected));
  out.Set("attaches", static_cast<double>(s.attaches));
  out.Set("inFlight", s.in_flight);
  out.Set("attached", s.attached);
  return out;
}

}  // namespace xenfs

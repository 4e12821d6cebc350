#include "event-log-binding.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace xenfs {

namespace {

double number(const Napi::Object& o, const char* key, double lo, double hi) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= lo && d <= hi))
    throw std::invalid_argument(std::string("EventLog: '") + key + "' must be a number in its range");
  return d;
}

std::string string(const Napi::Object& o, const char* key, bool optional = false) {
  Napi::Value v = o.Get(key);
  if (optional && v.IsUndefined()) return {};
  if (!v.IsString()) throw std::invalid_argument(std::string("EventLog: '") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::FunctionReference* constructor(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }

}  // namespace

Napi::Function EventLogHandle::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "EventLog",
                                  {InstanceMethod<&EventLogHandle::Append>("append"),
                                   InstanceMethod<&EventLogHandle::Position>("position"),
                                   InstanceMethod<&EventLogHandle::Failed>("failed"),
                                   InstanceMethod<&EventLogHandle::Close>("close")});
  // Kept so that from() can tell an EventLog from any other object a caller passes.
  auto* ref = new Napi::FunctionReference(Napi::Persistent(fn));
  env.SetInstanceData<Napi::FunctionReference>(ref);
  return fn;
}

std::shared_ptr<EventLog> EventLogHandle::from(Napi::Env env, const Napi::Value& v) {
  Napi::FunctionReference* ctor = constructor(env);
  if (!ctor || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value())) return nullptr;
  return Unwrap(v.As<Napi::Object>())->log_;
}

EventLogHandle::EventLogHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventLogHandle>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsObject() || !info[2].IsFunction())
    throw Napi::TypeError::New(env, "EventLog(dir, { segmentBytes, syncIntervalMs }, onSynced)");
  auto o = info[1].As<Napi::Object>();
  on_synced_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "xenfs-event-log", 0, 1);
  on_synced_.Unref(env);
  tsfn_live_ = true;
  Napi::ThreadSafeFunction tsfn = on_synced_;
  try {
    const auto segment = static_cast<uint64_t>(number(o, "segmentBytes", 4096, 1ull << 40));
    const auto interval = static_cast<uint32_t>(number(o, "syncIntervalMs", 0, 10000));
    // NonBlockingCall: the sync thread never waits on the JS thread, which may itself be in close().
    log_ = std::make_shared<EventLog>(info[0].As<Napi::String>().Utf8Value(), segment, interval, [tsfn]() mutable {
      tsfn.NonBlockingCall([](Napi::Env, Napi::Function fn) {
        // A last notice may arrive while the environment is torn down, when no JavaScript can run: the call
        // throws then, and letting that out of a thread-safe function's callback would abort the process.
        try {
          fn.Call({});
        } catch (const Napi::Error&) {
        }
      });
    });
  } catch (const std::invalid_argument& e) {
    CloseLog();
    throw Napi::TypeError::New(env, e.what());
  } catch (const std::exception& e) {
    CloseLog();
    throw Napi::Error::New(env, e.what());
  }
}

EventLogHandle::~EventLogHandle() { CloseLog(); }

void EventLogHandle::CloseLog() {
  if (log_) log_->close();
  if (tsfn_live_) {
    on_synced_.Release();
    tsfn_live_ = false;
  }
}

Napi::Value EventLogHandle::Append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "append(event)");
  auto o = info[0].As<Napi::Object>();
  std::string guest, exp, path, old;
  EventRecord r;
  try {
    r.kind = static_cast<EventKind>(number(o, "kind", 0, kEventKindCount - 1));
    r.origin = static_cast<EventOrigin>(number(o, "origin", 0, 1));
    r.dir = o.Get("dir").ToBoolean().Value();
    guest = string(o, "guest");
    exp = string(o, "export");
    path = string(o, "path");
    old = string(o, "oldPath", true);
    r.size = static_cast<uint64_t>(number(o, "size", 0, 9007199254740991.0));
    r.mtime_ms = number(o, "mtime", -1e15, 1e15);
    r.ino = static_cast<uint64_t>(number(o, "ino", 0, 9007199254740991.0));
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  r.guest = guest;
  r.exp = exp;
  r.path = path;
  r.old_path = old;
  int64_t seq = log_->append(r);
  if (seq < 0) {
    auto err = Napi::Error::New(env, std::string("event log append: ") + strerror(static_cast<int>(-seq)));
    err.Set("errno", Napi::Number::New(env, static_cast<double>(-seq)));
    throw err;
  }
  return Napi::Number::New(env, static_cast<double>(seq));
}

Napi::Value EventLogHandle::Position(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EventPosition p = log_->position();
  auto out = Napi::Object::New(env);
  out.Set("segment", static_cast<double>(p.segment));
  out.Set("offset", static_cast<double>(p.offset));
  out.Set("lastSeq", static_cast<double>(p.last_seq));
  return out;
}

Napi::Value EventLogHandle::Failed(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(log_->failed()));
}

Napi::Value EventLogHandle::Close(const Napi::CallbackInfo& info) {
  CloseLog();
  return info.Env().Undefined();
}

}  // namespace xenfs

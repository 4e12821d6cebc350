#include "engine-binding.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <vector>

#include "event-log-binding.hpp"
#include "export-backend.hpp"
#include "worker-pool.hpp"

namespace xenfs {

namespace {

// Option readers that name the key in their error, so a bad call says what was wrong with it.
uint32_t get_u32(const Napi::Object& o, const char* key, uint32_t fallback, bool required = false) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) {
    if (required) throw std::invalid_argument(std::string("Engine: option '") + key + "' is required");
    return fallback;
  }
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0)
    throw std::invalid_argument(std::string("Engine: option '") + key + "' must be a non-negative number");
  return v.As<Napi::Number>().Uint32Value();
}

uint64_t get_u64(const Napi::Object& o, const char* key, uint64_t fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (d < 0 || d > 9007199254740991.0)
    throw std::invalid_argument(std::string("Engine: option '") + key + "' must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

std::vector<ExportRoot> open_exports(const Napi::Object& o) {
  if (!o.Has("exports") || !o.Get("exports").IsArray())
    throw std::invalid_argument("Engine: option 'exports' must be an array");
  auto arr = o.Get("exports").As<Napi::Array>();
  std::vector<ExportRoot> roots;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    auto e = arr.Get(i).As<Napi::Object>();
    if (!e.Get("path").IsString()) throw std::invalid_argument("Engine: exports[" + std::to_string(i) + "].path");
    std::string path = e.Get("path").As<Napi::String>().Utf8Value();
    int fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      for (auto& r : roots) close(r.dirfd);
      throw std::runtime_error("cannot open export " + path + ": " + strerror(errno));
    }
    roots.push_back(ExportRoot{fd, e.Get("readOnly").ToBoolean().Value(), e.Get("writesViaDom0").ToBoolean().Value()});
  }
  if (roots.empty()) throw std::invalid_argument("Engine: a guest needs at least one export");
  return roots;
}

std::vector<IdRange> id_ranges(const Napi::Object& o, const char* key) {
  std::vector<IdRange> out;
  if (!o.Has(key) || o.Get(key).IsUndefined()) return out;
  if (!o.Get(key).IsArray()) throw std::invalid_argument(std::string("Engine: idMap.") + key + " must be an array");
  auto arr = o.Get(key).As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    if (!arr.Get(i).IsObject()) throw std::invalid_argument(std::string("Engine: idMap.") + key + " entries are objects");
    auto r = arr.Get(i).As<Napi::Object>();
    out.push_back(IdRange{get_u32(r, "guest", 0, true), get_u32(r, "host", 0, true), get_u32(r, "count", 0, true)});
  }
  return out;
}

// { log, guest, exports: string[] }: one name per export, in the order of the `exports` option.
EventSource event_source(Napi::Env env, const Napi::Object& o, size_t exports) {
  EventSource src;
  src.log = EventLogHandle::from(env, o.Get("log"));
  if (!src.log) throw std::invalid_argument("Engine: events.log must be an EventLog");
  if (!o.Get("guest").IsString()) throw std::invalid_argument("Engine: events.guest must be a string");
  src.guest = o.Get("guest").As<Napi::String>().Utf8Value();
  if (!o.Get("exports").IsArray() || o.Get("exports").As<Napi::Array>().Length() != exports)
    throw std::invalid_argument("Engine: events.exports must name every export");
  auto names = o.Get("exports").As<Napi::Array>();
  for (uint32_t i = 0; i < names.Length(); i++) {
    if (!names.Get(i).IsString()) throw std::invalid_argument("Engine: events.exports holds strings");
    src.exports.push_back(names.Get(i).As<Napi::String>().Utf8Value());
  }
  return src;
}

struct EndEvent {
  bool violation;
  std::string reason;
};

}  // namespace

Napi::Function Engine::Define(Napi::Env env) {
  return DefineClass(env, "Engine", {InstanceMethod<&Engine::Stop>("stop"), InstanceMethod<&Engine::Stats>("stats"),
                                     InstanceMethod<&Engine::AttachFuse>("attachFuse")});
}

Engine::Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "Engine(options, onEnd)").ThrowAsJavaScriptException();
    return;
  }
  auto o = info[0].As<Napi::Object>();
  try {
    BackendLimits bl;
    SessionLimits sl;
    Napi::Object lim = o.Has("limits") && o.Get("limits").IsObject() ? o.Get("limits").As<Napi::Object>()
                                                                      : Napi::Object::New(env);
    bl.max_nodes = get_u32(lim, "maxNodes", bl.max_nodes);
    bl.max_handles = get_u32(lim, "maxHandles", bl.max_handles);
    bl.max_xattr_size = get_u32(lim, "maxXattrSize", bl.max_xattr_size);
    bl.max_file_size = get_u64(lim, "maxFileSize", bl.max_file_size);
    sl.max_mapped_grants = get_u32(lim, "maxMappedGrants", sl.max_mapped_grants);
    sl.max_bytes_in_flight = get_u32(lim, "maxBytesInFlight", static_cast<uint32_t>(sl.max_bytes_in_flight));
    sl.spin_us = get_u32(lim, "spinMicros", sl.spin_us);
    sl.locks.max_locks = get_u32(lim, "maxLocks", sl.locks.max_locks);
    sl.locks.max_waiters = get_u32(lim, "maxLockWaiters", sl.locks.max_waiters);
    uint32_t features = get_u32(o, "features", proto::kAllFeatures) & proto::kAllFeatures;
    std::string transport = o.Get("transport").IsString() ? o.Get("transport").As<Napi::String>().Utf8Value() : "";
    if (o.Has("identity") && o.Get("identity").IsObject()) {
      auto id = o.Get("identity").As<Napi::Object>();
      sl.act_as = true;
      sl.fs_uid = get_u32(id, "uid", 0, true);
      sl.fs_gid = get_u32(id, "gid", 0, true);
    }
    IdMap ids;
    if (o.Has("idMap") && o.Get("idMap").IsObject()) {
      auto m = o.Get("idMap").As<Napi::Object>();
      ids.uids = id_ranges(m, "uid");
      ids.gids = id_ranges(m, "gid");
    }
    std::vector<ExportRoot> roots = open_exports(o);
    const size_t export_count = roots.size();
    auto backend = std::make_unique<ExportBackend>(std::move(roots), bl, std::move(ids));
    if (transport == "ring") {
      RingSetup rs;
      rs.mem_fd = static_cast<int>(get_u32(o, "memFd", 0, true));
      rs.mem_pages = get_u32(o, "memPages", 0, true);
      if (!o.Get("grantTable").IsObject()) throw std::invalid_argument("Engine: option 'grantTable' is required");
      auto gt = o.Get("grantTable").As<Napi::Object>();
      rs.grant_table_offset = get_u32(gt, "offset", 0, true);
      rs.grant_entries = get_u32(gt, "entries", 0, true);
      if (!o.Get("ringRefs").IsArray()) throw std::invalid_argument("Engine: option 'ringRefs' must be an array");
      auto refs = o.Get("ringRefs").As<Napi::Array>();
      for (uint32_t i = 0; i < refs.Length() && i < 64; i++)
        rs.ring_refs.push_back(refs.Get(i).As<Napi::Number>().Uint32Value());
      rs.ring_slots = get_u32(o, "ringSlots", 0, true);
      rs.evt_rx = static_cast<int>(get_u32(o, "evtRxFd", 0, true));
      rs.evt_tx = static_cast<int>(get_u32(o, "evtTxFd", 0, true));
      session_ = std::make_shared<RingSession>(std::move(backend), features, sl, rs);
    } else if (transport == "stream") {
      session_ = std::make_shared<StreamSession>(std::move(backend), features, sl,
                                                 static_cast<int>(get_u32(o, "fd", 0, true)));
    } else {
      throw std::invalid_argument("Engine: option 'transport' must be 'ring' or 'stream'");
    }
    if (o.Has("events") && o.Get("events").IsObject())
      session_->report_events(event_source(env, o.Get("events").As<Napi::Object>(), export_count));
  } catch (const std::invalid_argument& e) {
    Napi::TypeError::New(env, e.what()).ThrowAsJavaScriptException();
    return;
  } catch (const std::exception& e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    return;
  }
  on_end_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "xenfs-session", 0, 1);
  on_end_.Unref(env);
  tsfn_live_ = true;
  Napi::ThreadSafeFunction tsfn = on_end_;
  // NonBlockingCall: the session thread must never wait on the JS thread, which may itself be waiting in stop().
  session_->start([tsfn](bool violation, const std::string& reason) mutable {
    auto* ev = new EndEvent{violation, reason};
    if (tsfn.NonBlockingCall(ev, [](Napi::Env env, Napi::Function fn, EndEvent* data) {
          fn.Call({Napi::Boolean::New(env, data->violation), Napi::String::New(env, data->reason)});
          delete data;
        }) != napi_ok)
      delete ev;
  });
}

Engine::~Engine() { StopSession(); }

void Engine::StopSession() {
  if (session_) {
    session_->stop();
    session_.reset();
  }
  if (tsfn_live_) {
    on_end_.Release();
    tsfn_live_ = false;
  }
}

Napi::Value Engine::Stop(const Napi::CallbackInfo& info) {
  StopSession();
  return info.Env().Undefined();
}

Napi::Value Engine::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  if (!session_) return env.Null();
  const auto& s = session_->stats();
  out.Set("requests", static_cast<double>(s.requests.load()));
  out.Set("errors", static_cast<double>(s.errors.load()));
  out.Set("pooled", static_cast<double>(s.pooled.load()));
  out.Set("wakeups", static_cast<double>(s.wakeups.load()));
  out.Set("notifies", static_cast<double>(s.notifies.load()));
  out.Set("inFlight", s.in_flight.load());
  out.Set("bytesInFlight", static_cast<double>(s.bytes_in_flight.load()));
  out.Set("bytesRead", static_cast<double>(s.bytes_read.load()));
  out.Set("bytesWritten", static_cast<double>(s.bytes_written.load()));
  out.Set("handles", session_->backend().handle_count());
  out.Set("nodes", session_->backend().node_count());
  out.Set("mappedGrants", session_->mapped_grants());
  out.Set("fuseAttached", session_->fuse_attached());
  out.Set("backingFiles", session_->backing_files());
  out.Set("eventsLost", static_cast<double>(session_->events_lost()));
  return out;
}

// attachFuse(fd, root): 0, or the errno saying why not (ENODEV: not /dev/fuse; EINVAL: root is not one of the
// guest's export roots; EBUSY: one is attached; ENOTCONN: the engine has stopped). The caller keeps `fd` and
// closes its own copy.
Napi::Value Engine::AttachFuse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "attachFuse(fd, root)");
  if (!session_) return Napi::Number::New(env, ENOTCONN);
  const double root = info[1].As<Napi::Number>().DoubleValue();
  if (!(root >= 1 && root <= UINT32_MAX)) return Napi::Number::New(env, EINVAL);
  return Napi::Number::New(env, -session_->attach_fuse(info[0].As<Napi::Number>().Int32Value(),
                                                       static_cast<uint64_t>(root)));
}

Napi::Value ConfigureWorkers(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) WorkerPool::configure(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

}  // namespace xenfs

#include "grant-binding.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "guest-memory.hpp"
#include "protocol.hpp"

namespace xenfs {

namespace {

bool throw_if(Napi::Env env, bool bad, const char* msg) {
  if (bad) Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return bad;
}

std::vector<uint32_t> u32_array(const Napi::Value& v) {
  std::vector<uint32_t> out;
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_uint32_array) {
      auto a = v.As<Napi::Uint32Array>();
      out.assign(a.Data(), a.Data() + a.ElementLength());
    }
    return out;
  }
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
  }
  return out;
}

const char* errname(int rc) { return strerror(-rc); }

}  // namespace

Napi::Function GrantTable::Define(Napi::Env env) {
  return DefineClass(env, "GrantTable",
                     {InstanceMethod<&GrantTable::Grant>("grant"), InstanceMethod<&GrantTable::GrantMany>("grantMany"),
                      InstanceMethod<&GrantTable::EndAccess>("endAccess"),
                      InstanceMethod<&GrantTable::EndMany>("endMany")});
}

GrantTable::GrantTable(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GrantTable>(info) {
  Napi::Env env = info.Env();
  if (throw_if(env, info.Length() < 3 || !info[0].IsObject() || !info[1].IsNumber() || !info[2].IsNumber(),
               "GrantTable(memory, offsetBytes, entries)"))
    return;
  auto* mem = GuestMemory::Unwrap(info[0].As<Napi::Object>());
  int64_t off = info[1].As<Napi::Number>().Int64Value();
  int64_t entries = info[2].As<Napi::Number>().Int64Value();
  size_t bytes = size_t{mem->pages()} * proto::kPageSize;
  if (throw_if(env, off < 0 || off % proto::kPageSize != 0 || entries < 1 || entries > 65536 ||
                        static_cast<size_t>(off) + static_cast<size_t>(entries) * sizeof(GrantEntry) > bytes,
               "GrantTable: the table must be page-aligned, 1..65536 entries, inside the memory"))
    return;
  memory_ = Napi::Persistent(info[0].As<Napi::Object>());
  core_ = std::make_unique<GrantTableCore>(mem->base() + off, static_cast<uint32_t>(entries), mem->pages());
}

Napi::Value GrantTable::Grant(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (throw_if(env, info.Length() < 4, "grant(ref, domid, frame, readOnly)")) return env.Undefined();
  int rc = core_->grant(info[0].As<Napi::Number>().Uint32Value(),
                        static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()),
                        info[2].As<Napi::Number>().Uint32Value(), info[3].ToBoolean().Value());
  if (rc < 0) Napi::Error::New(env, std::string("grant failed: ") + errname(rc)).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value GrantTable::GrantMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (throw_if(env, info.Length() < 4, "grantMany(refs, frames, domid, readOnly)")) return env.Undefined();
  auto refs = u32_array(info[0]);
  auto frames = u32_array(info[1]);
  if (throw_if(env, refs.size() != frames.size(), "grantMany: refs and frames differ in length")) return env.Undefined();
  auto domid = static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value());
  bool ro = info[3].ToBoolean().Value();
  for (size_t i = 0; i < refs.size(); i++) {
    int rc = core_->grant(refs[i], domid, frames[i], ro);
    if (rc < 0) {
      for (size_t j = 0; j < i; j++) core_->end_access(refs[j]);
      Napi::Error::New(env, std::string("grant failed: ") + errname(rc)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  return env.Undefined();
}

Napi::Value GrantTable::EndAccess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (throw_if(env, info.Length() < 1 || !info[0].IsNumber(), "endAccess(ref)")) return env.Undefined();
  int rc = core_->end_access(info[0].As<Napi::Number>().Uint32Value());
  if (rc == -EINVAL) {
    Napi::RangeError::New(env, "endAccess: no such grant reference").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, rc == 0);
}

Napi::Value GrantTable::EndMany(const Napi::CallbackInfo& info) {
  auto refs = u32_array(info[0]);
  uint32_t busy = 0;
  for (uint32_t r : refs) busy += core_->end_access(r) != 0;
  return Napi::Number::New(info.Env(), busy);
}

Napi::Function GrantMap::Define(Napi::Env env) {
  return DefineClass(env, "GrantMap",
                     {InstanceMethod<&GrantMap::Map>("map"), InstanceMethod<&GrantMap::Unmap>("unmap"),
                      InstanceAccessor<&GrantMap::Mapped>("mapped")});
}

GrantMap::GrantMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GrantMap>(info) {
  Napi::Env env = info.Env();
  if (throw_if(env, info.Length() < 4, "GrantMap(memFd, memPages, tableOffset, entries, {domid, maxMapped})")) return;
  uint16_t domid = 0;
  uint32_t max_mapped = 1024;
  if (info.Length() > 4 && info[4].IsObject()) {
    auto o = info[4].As<Napi::Object>();
    if (o.Has("domid")) domid = static_cast<uint16_t>(o.Get("domid").As<Napi::Number>().Uint32Value());
    if (o.Has("maxMapped")) max_mapped = o.Get("maxMapped").As<Napi::Number>().Uint32Value();
  }
  mapper_ = std::make_unique<GrantMapper>(info[0].As<Napi::Number>().Int32Value(),
                                          info[1].As<Napi::Number>().Uint32Value(),
                                          info[2].As<Napi::Number>().Uint32Value(),
                                          info[3].As<Napi::Number>().Uint32Value(), domid, max_mapped);
  if (!mapper_->ok()) Napi::Error::New(env, mapper_->error()).ThrowAsJavaScriptException();
}

GrantMap::~GrantMap() {
  for (auto& [id, m] : maps_) mapper_->unmap(m);
}

// map(refs, writable) → { id, read(): Buffer, write(offset, data) } keeps JavaScript from ever holding a pointer
// into a mapping that may be gone: reads copy out, writes copy in (and fault, as they should, on a read-only map).
Napi::Value GrantMap::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto refs = u32_array(info[0]);
  bool writable = info.Length() > 1 && info[1].ToBoolean().Value();
  GrantMapping m;
  int rc = mapper_->map(refs.data(), static_cast<uint32_t>(refs.size()), writable, m);
  if (rc < 0) {
    auto err = Napi::Error::New(env, std::string("grant map failed: ") + errname(rc));
    err.Set("errno", Napi::Number::New(env, -rc));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t id = next_id_++;
  maps_.emplace(id, std::move(m));
  auto out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, id));
  out.Set("read", Napi::Function::New(env, [this, id](const Napi::CallbackInfo& ci) -> Napi::Value {
    auto it = maps_.find(id);
    if (it == maps_.end()) return ci.Env().Null();
    size_t total = 0;
    for (auto& r : it->second.runs) total += r.iov_len;
    auto buf = Napi::Buffer<uint8_t>::New(ci.Env(), total);
    size_t at = 0;
    for (auto& r : it->second.runs) {
      std::memcpy(buf.Data() + at, r.iov_base, r.iov_len);
      at += r.iov_len;
    }
    return buf;
  }));
  out.Set("write", Napi::Function::New(env, [this, id](const Napi::CallbackInfo& ci) -> Napi::Value {
    auto it = maps_.find(id);
    if (it == maps_.end() || ci.Length() < 2 || !ci[1].IsBuffer()) return ci.Env().Undefined();
    size_t off = ci[0].As<Napi::Number>().Uint32Value();
    auto data = ci[1].As<Napi::Buffer<uint8_t>>();
    for (auto& r : it->second.runs) {
      if (off >= r.iov_len) {
        off -= r.iov_len;
        continue;
      }
      size_t n = std::min(r.iov_len - off, data.Length());
      std::memcpy(static_cast<uint8_t*>(r.iov_base) + off, data.Data(), n);
      break;
    }
    return ci.Env().Undefined();
  }));
  return out;
}

Napi::Value GrantMap::Unmap(const Napi::CallbackInfo& info) {
  auto it = maps_.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != maps_.end()) {
    mapper_->unmap(it->second);
    maps_.erase(it);
  }
  return info.Env().Undefined();
}

Napi::Value GrantMap::Mapped(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mapper_->mapped());
}

}  // namespace xenfs

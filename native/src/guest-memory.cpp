#include "guest-memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "protocol.hpp"
#include "shared-memory.hpp"

namespace xenfs {

namespace {
constexpr uint32_t kMaxPages = 1u << 18;  // 1 GiB: a sanity bound, not a design limit
}

Napi::Function GuestMemory::Define(Napi::Env env) {
  return DefineClass(env, "GuestMemory",
                     {InstanceAccessor<&GuestMemory::Fd>("fd"), InstanceAccessor<&GuestMemory::Pages>("pages"),
                      InstanceAccessor<&GuestMemory::Buffer>("buffer"),
                      InstanceMethod<&GuestMemory::Close>("close")});
}

GuestMemory::GuestMemory(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMemory>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "GuestMemory(pages, name?): pages must be a number").ThrowAsJavaScriptException();
    return;
  }
  int64_t pages = info[0].As<Napi::Number>().Int64Value();
  if (pages < 1 || pages > kMaxPages) {
    Napi::RangeError::New(env, "GuestMemory: pages must be 1.." + std::to_string(kMaxPages))
        .ThrowAsJavaScriptException();
    return;
  }
  std::string name = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "xenfs-domain";
  int fd = create_domain_memory(name.c_str(), static_cast<uint32_t>(pages));
  if (fd < 0) {
    Napi::Error::New(env, std::string("memfd_create failed: ") + strerror(-fd)).ThrowAsJavaScriptException();
    return;
  }
  size_t bytes = static_cast<size_t>(pages) * proto::kPageSize;
  void* p = map_shared(fd, 0, bytes, true);
  if (!p) {
    close(fd);
    Napi::Error::New(env, "mapping domain memory failed").ThrowAsJavaScriptException();
    return;
  }
  fd_ = fd;
  base_ = static_cast<uint8_t*>(p);
  pages_ = static_cast<uint32_t>(pages);
  // The ArrayBuffer owns the mapping: it is unmapped only when JavaScript can no longer reach it.
  auto ab = Napi::ArrayBuffer::New(env, p, bytes, [](Napi::Env, void* data, size_t* len) {
    munmap(data, *len);
    delete len;
  }, new size_t(bytes));
  buffer_ = Napi::Persistent(ab);
}

GuestMemory::~GuestMemory() {
  if (fd_ >= 0) close(fd_);
}

Napi::Value GuestMemory::Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value GuestMemory::Pages(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pages_); }
Napi::Value GuestMemory::Buffer(const Napi::CallbackInfo& info) {
  if (buffer_.IsEmpty()) return info.Env().Null();
  return buffer_.Value();
}

Napi::Value GuestMemory::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

}  // namespace xenfs

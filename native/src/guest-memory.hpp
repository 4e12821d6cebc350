// GuestMemory: a domain's RAM as seen by the domain itself (the guest side of every shared structure).
// `new GuestMemory(pages, name)` creates the sealed memfd and maps all of it; `.fd` goes to dom0 over the control
// channel; `.buffer` is an ArrayBuffer over the mapping (unmapped when the last view is collected).
#pragma once

#include <napi.h>

#include <cstdint>

namespace xenfs {

class GuestMemory : public Napi::ObjectWrap<GuestMemory> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GuestMemory(const Napi::CallbackInfo& info);
  ~GuestMemory() override;

  uint8_t* base() const { return base_; }
  uint32_t pages() const { return pages_; }

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Pages(const Napi::CallbackInfo& info);
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint32_t pages_ = 0;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

}  // namespace xenfs

#include "front-ring.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "guest-memory.hpp"

namespace xenfs {

Napi::Function FrontRing::Define(Napi::Env env) {
  return DefineClass(env, "FrontRing",
                     {InstanceMethod<&FrontRing::PushPublish>("pushPublish"),
                      InstanceMethod<&FrontRing::TakeInto>("takeInto"), InstanceMethod<&FrontRing::FinalCheck>("finalCheck"),
                      InstanceMethod<&FrontRing::Poll>("poll"),
                      InstanceAccessor<&FrontRing::Outstanding>("outstanding")});
}

FrontRing::FrontRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FrontRing>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "FrontRing(memory, offsetBytes, slots)").ThrowAsJavaScriptException();
    return;
  }
  auto* mem = GuestMemory::Unwrap(info[0].As<Napi::Object>());
  int64_t off = info[1].As<Napi::Number>().Int64Value();
  uint32_t slots = info[2].As<Napi::Number>().Uint32Value();
  size_t bytes = size_t{mem->pages()} * proto::kPageSize;
  if (!ring_size_ok(slots) || off < 0 || off % proto::kPageSize != 0 ||
      static_cast<size_t>(off) + ring_bytes(slots) > bytes) {
    Napi::RangeError::New(env, "FrontRing: slots must be a power of two in 8..256 and the ring inside the memory")
        .ThrowAsJavaScriptException();
    return;
  }
  memory_ = Napi::Persistent(info[0].As<Napi::Object>());
  core_ = std::make_unique<FrontRingCore>(mem->base() + off, slots);
  core_->init();
}

Napi::Value FrontRing::PushPublish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != proto::kSlotSize) {
    Napi::TypeError::New(env, "pushPublish(slot): a 512-byte Buffer expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (core_->free_requests() == 0) return Napi::Number::New(env, 0);
  std::memcpy(core_->request_slot(), info[0].As<Napi::Buffer<uint8_t>>().Data(), proto::kSlotSize);
  core_->advance_request();
  return Napi::Number::New(env, core_->push_requests() ? 2 : 1);
}

Napi::Value FrontRing::TakeInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "takeInto(buffer): a Buffer expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  uint32_t room = static_cast<uint32_t>(buf.Length() / proto::kSlotSize);
  uint32_t n = std::min(core_->unconsumed_responses(), room);
  for (uint32_t i = 0; i < n; i++) {
    std::memcpy(buf.Data() + size_t{i} * proto::kSlotSize, core_->response_slot(), proto::kSlotSize);
    core_->consume_response();
  }
  return Napi::Number::New(env, n);
}

Napi::Value FrontRing::FinalCheck(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), core_->final_check_for_responses());
}

Napi::Value FrontRing::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double us = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (core_->unconsumed_responses()) return Napi::Boolean::New(env, true);
  if (us <= 0 || core_->outstanding() == 0) return Napi::Boolean::New(env, false);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(static_cast<int64_t>(us * 1000));
  do {
    for (int i = 0; i < 64; i++) {
      if (core_->unconsumed_responses()) return Napi::Boolean::New(env, true);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  } while (std::chrono::steady_clock::now() < deadline);
  return Napi::Boolean::New(env, false);
}

Napi::Value FrontRing::Outstanding(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), core_->outstanding());
}

}  // namespace xenfs

// A heap-allocated libuv poll handle watching one descriptor for readability, owned by a bound object. libuv
// frees a handle only after uv_close's callback, so the handle outlives its owner; `data` is cleared first so a
// callback already queued never reaches an owner that is gone.
#pragma once

#include <napi.h>
#include <uv.h>

namespace xenfs {

// nullptr when libuv refuses the descriptor.
inline uv_poll_t* start_poll(Napi::Env env, int fd, void* owner, int events, uv_poll_cb cb) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* poll = new uv_poll_t;
  if (uv_poll_init(loop, poll, fd) != 0) {
    delete poll;
    return nullptr;
  }
  poll->data = owner;
  uv_poll_start(poll, events, cb);
  return poll;
}

inline void close_poll(uv_poll_t*& poll) {
  if (!poll) return;
  poll->data = nullptr;
  uv_poll_stop(poll);
  uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll = nullptr;
}

}  // namespace xenfs

// The control channel (xenstore's role) and the stream listeners: UNIX SOCK_SEQPACKET sockets carrying JSON
// messages with file descriptors attached (SCM_RIGHTS), peer credentials (SO_PEERCRED), and a libuv watcher that
// calls JavaScript when a descriptor becomes readable. All descriptors are non-blocking and close-on-exec.
//
// Functions (all throw a TypeError on bad arguments and an Error with `.errno` on a failed system call):
//   listenSeqpacket(path) → fd           connectSeqpacket(path) → fd
//   listenStream(path) → fd              listenTcp(host, port) → { fd, port }
//   accept(fd) → { fd, pid, uid, gid } | null (nothing pending)
//   sendMessage(fd, data: Buffer, fds: number[])
//   recvMessage(fd) → { data: Buffer, fds: number[] } | null (nothing pending) | { eof: true }
//   closeFd(fd)   dupFd(fd) → fd        createEventFd() → fd
// Class FdWatcher: `new FdWatcher(fd, callback)`, `.stop()`; the watcher never closes the fd.
#pragma once

#include <napi.h>
#include <uv.h>

namespace xenfs {

void define_control_socket(Napi::Env env, Napi::Object exports);

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FdWatcher(const Napi::CallbackInfo& info);
  ~FdWatcher() override;

 private:
  Napi::Value Stop(const Napi::CallbackInfo& info);
  void StopPoll();
  static void OnPoll(uv_poll_t* handle, int status, int events);

  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
};

}  // namespace xenfs

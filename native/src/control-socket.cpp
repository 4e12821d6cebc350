#include "control-socket.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "event-channel.hpp"
#include "uv-poll.hpp"

namespace xenfs {

namespace {

constexpr size_t kMaxMessage = 65536;
constexpr size_t kMaxFds = 16;

Napi::Value sys_error(Napi::Env env, const char* what, int err) {
  auto e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool make_unix_addr(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

Napi::Value listen_unix(const Napi::CallbackInfo& info, int type) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "listen(path): a socket path expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  sockaddr_un addr;
  if (!make_unix_addr(info[0].As<Napi::String>().Utf8Value(), addr)) return sys_error(env, "socket path", ENAMETOOLONG);
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error(env, "socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, 128) < 0) {
    int err = errno;
    close(fd);
    return sys_error(env, "bind/listen", err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value ListenSeqpacket(const Napi::CallbackInfo& info) { return listen_unix(info, SOCK_SEQPACKET); }
Napi::Value ListenStream(const Napi::CallbackInfo& info) { return listen_unix(info, SOCK_STREAM); }

Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "listenTcp(host, port)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()));
  if (inet_pton(AF_INET, info[0].As<Napi::String>().Utf8Value().c_str(), &addr.sin_addr) != 1) {
    Napi::TypeError::New(env, "listenTcp: host must be an IPv4 address").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error(env, "socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, 128) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    int err = errno;
    close(fd);
    return sys_error(env, "bind/listen", err);
  }
  auto out = Napi::Object::New(env);
  out.Set("fd", fd);
  out.Set("port", ntohs(addr.sin_port));
  return out;
}

Napi::Value ConnectSeqpacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "connectSeqpacket(path)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  sockaddr_un addr;
  if (!make_unix_addr(info[0].As<Napi::String>().Utf8Value(), addr)) return sys_error(env, "socket path", ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error(env, "socket", errno);
  // A local connect completes at once or fails at once, so connecting before going non-blocking costs nothing.
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return sys_error(env, "connect", err);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Napi::Number::New(env, fd);
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int lfd = info[0].As<Napi::Number>().Int32Value();
  int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return env.Null();
    return sys_error(env, "accept", errno);
  }
  auto out = Napi::Object::New(env);
  out.Set("fd", fd);
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    out.Set("pid", cred.pid);
    out.Set("uid", cred.uid);
    out.Set("gid", cred.gid);
  } else {
    // TCP peers have no credentials; -1 says "unknown", never "root".
    out.Set("pid", -1);
    out.Set("uid", -1);
    out.Set("gid", -1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return out;
}

Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "sendMessage(fd, data, fds?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  if (fds.size() > kMaxFds || data.Length() > kMaxMessage) {
    Napi::RangeError::New(env, "sendMessage: message too large").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error(env, "sendmsg", errno);
  return env.Undefined();
}

Napi::Value RecvMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::vector<uint8_t> buf(kMaxMessage);
  iovec iov{buf.data(), buf.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    if (errno == ECONNRESET) {
      auto out = Napi::Object::New(env);
      out.Set("eof", true);
      return out;
    }
    return sys_error(env, "recvmsg", errno);
  }
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    fds.insert(fds.end(), p, p + count);
  }
  auto out = Napi::Object::New(env);
  // A truncated message or descriptor list is never half-used: its descriptors are closed and the caller told.
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    for (int f : fds) close(f);
    out.Set("truncated", true);
    out.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), 0));
    out.Set("fds", Napi::Array::New(env));
    return out;
  }
  if (n == 0 && fds.empty()) {
    out.Set("eof", true);
    return out;
  }
  out.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  auto arr = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) arr.Set(static_cast<uint32_t>(i), fds[i]);
  out.Set("fds", arr);
  return out;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd > 2) close(fd);
  }
  return info.Env().Undefined();
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "dupFd(fd)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return sys_error(info.Env(), "dup", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CreateEventFd(const Napi::CallbackInfo& info) {
  int fd = evtchn_create_fd();
  if (fd < 0) return sys_error(info.Env(), "eventfd", -fd);
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void define_control_socket(Napi::Env env, Napi::Object exports) {
  exports.Set("listenSeqpacket", Napi::Function::New(env, ListenSeqpacket));
  exports.Set("listenStream", Napi::Function::New(env, ListenStream));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp));
  exports.Set("connectSeqpacket", Napi::Function::New(env, ConnectSeqpacket));
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage));
  exports.Set("recvMessage", Napi::Function::New(env, RecvMessage));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("createEventFd", Napi::Function::New(env, CreateEventFd));
  exports.Set("dupFd", Napi::Function::New(env, DupFd));
}

Napi::Function FdWatcher::Define(Napi::Env env) {
  return DefineClass(env, "FdWatcher", {InstanceMethod<&FdWatcher::Stop>("stop")});
}

FdWatcher::FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "FdWatcher(fd, callback)").ThrowAsJavaScriptException();
    return;
  }
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  poll_ = start_poll(env, info[0].As<Napi::Number>().Int32Value(), this, UV_READABLE | UV_DISCONNECT,
                     &FdWatcher::OnPoll);
  if (!poll_) Napi::Error::New(env, "FdWatcher: cannot watch this descriptor").ThrowAsJavaScriptException();
}

FdWatcher::~FdWatcher() { StopPoll(); }

void FdWatcher::StopPoll() { close_poll(poll_); }

void FdWatcher::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<FdWatcher*>(handle->data);
  if (!self || self->callback_.IsEmpty()) return;
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  try {
    self->callback_.Call({Napi::Number::New(env, status < 0 ? status : events)});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

Napi::Value FdWatcher::Stop(const Napi::CallbackInfo& info) {
  StopPoll();
  callback_.Reset();
  return info.Env().Undefined();
}

}  // namespace xenfs

#include "fuse-binding.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "fuse-channel.hpp"
#include "fuse-kernel.hpp"

namespace xenfs {
namespace {

Napi::Error errno_error(Napi::Env env, int err, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// Closes the connection and detaches the mount on every way out, so a probe can never leave a mount behind that
// nobody serves (it would hang whoever touched it).
struct ProbeMount {
  int fd = -1;
  std::string dir;
  bool mounted = false;
  ~ProbeMount() {
    if (mounted) umount2(dir.c_str(), MNT_DETACH);
    if (fd >= 0) close(fd);
  }
};

Napi::Value FuseProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "fuseProbe(dir, opts?)");
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  ProbeMount pm;
  pm.dir = info[0].As<Napi::String>().Utf8Value();
  if (opts.Has("fd") && opts.Get("fd").IsNumber()) {
    // A /dev/fuse opened elsewhere: in a user namespace, the kernel mounts only a connection opened in that
    // namespace (native/enter/xenfs-enter.c opens it there). Duplicated: the caller keeps its own.
    int given = opts.Get("fd").As<Napi::Number>().Int32Value();
    if (int rc = fuse_device_check(given); rc < 0) throw errno_error(env, -rc, "fuseProbe: fd is not /dev/fuse");
    pm.fd = fcntl(given, F_DUPFD_CLOEXEC, 3);
    if (pm.fd < 0) throw errno_error(env, errno, std::string("duplicating /dev/fuse failed: ") + strerror(errno));
  } else {
    pm.fd = fuse_device_open();
    if (pm.fd < 0) throw errno_error(env, -pm.fd, std::string("opening /dev/fuse failed: ") + strerror(-pm.fd));
  }
  FuseMountSpec spec;
  spec.dir = pm.dir;
  spec.fsname = "xenfs-probe";
  if (opts.Has("fsname") && opts.Get("fsname").IsString()) {
    spec.fsname = opts.Get("fsname").As<Napi::String>().Utf8Value();
    // The kernel splits mount data at commas: a name with one would smuggle in options.
    if (spec.fsname.empty() || spec.fsname.find_first_of(",\n") != std::string::npos)
      throw Napi::TypeError::New(env, "fuseProbe: fsname must be non-empty, without commas or newlines");
  }
  spec.subtype = "xenfs";
  spec.allow_other = opts.Has("allowOther") && opts.Get("allowOther").ToBoolean();
  spec.uid = getuid();
  spec.gid = getgid();
  std::string why;
  int rc = fuse_mount(pm.fd, spec, why);
  if (rc < 0) throw errno_error(env, -rc, why);
  pm.mounted = true;
  bool want_passthrough = !opts.Has("passthrough") || opts.Get("passthrough").ToBoolean();
  // ATOMIC_O_TRUNC: O_TRUNC travels with the OPEN that dom0 checks, instead of as a separate SETATTR.
  // POSIX_LOCKS, FLOCK_LOCKS: fcntl and flock locks go to the server (dom0's lock table), not kept in this kernel.
  // HANDLE_KILLPRIV_V2: the server kills setuid/setgid bits and capabilities on write; the kernel then marks the
  // superblock SB_NOSEC and stops asking for security.capability before every write(2), a round trip per write
  // even with passthrough (measured: 1 FUSE request per write without it, 0 with it). Guests cannot set those
  // bits (dom0 strips them from every chmod) nor see security.* xattrs, so there is nothing of theirs to kill.
  uint64_t wanted = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_ATOMIC_O_TRUNC |
                    FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_HANDLE_KILLPRIV_V2 |
                    (want_passthrough ? fusek::kPassthrough : 0);
  uint32_t max_write = 1u << 20;
  if (opts.Has("maxWrite") && opts.Get("maxWrite").IsNumber()) {
    max_write = opts.Get("maxWrite").As<Napi::Number>().Uint32Value();
    if (max_write < 4096 || max_write > (1u << 20)) throw Napi::RangeError::New(env, "fuseProbe: maxWrite must be 4096..1 MiB");
  }
  FuseNegotiated neg;
  rc = fuse_negotiate(pm.fd, wanted, max_write, neg, why);
  if (rc < 0) throw errno_error(env, -rc, why);

  Napi::Object out = Napi::Object::New(env);
  out.Set("kernelMajor", neg.kernel_major);
  out.Set("kernelMinor", neg.kernel_minor);
  out.Set("minor", neg.minor);
  out.Set("passthrough", neg.passthrough);
  char hex[19];
  snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(neg.kernel_flags));
  out.Set("kernelFlags", hex);
  snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(neg.flags));
  out.Set("flags", hex);
  if (opts.Has("backingFile") && opts.Get("backingFile").IsString()) {
    // Registering a backing file is what dom0 does for each open it allows: prove the kernel takes one here.
    std::string file = opts.Get("backingFile").As<Napi::String>().Utf8Value();
    int ffd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (ffd < 0) throw errno_error(env, errno, "opening " + file + " failed: " + strerror(errno));
    int id = fuse_backing_open(pm.fd, ffd);
    close(ffd);
    if (id < 0) {
      out.Set("backingError", -id);
    } else {
      out.Set("backingId", id);
      int closed = fuse_backing_close(pm.fd, id);
      out.Set("backingClosed", closed == 0);
    }
  }
  if (opts.Has("keep") && opts.Get("keep").ToBoolean()) {
    // The caller takes the live connection: it serves the mount from here, or hands the descriptor on, and
    // detaches the mount (fuseDetach) and closes the descriptor itself.
    out.Set("fd", pm.fd);
    pm.fd = -1;
    pm.mounted = false;
  }
  return out;
}

Napi::Value FuseDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "fuseDetach(dir)");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  return Napi::Number::New(env, umount2(dir.c_str(), MNT_DETACH) < 0 ? errno : 0);
}

Napi::Value FuseDeviceCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "fuseDeviceCheck(fd)");
  return Napi::Number::New(env, -fuse_device_check(info[0].As<Napi::Number>().Int32Value()));
}

}  // namespace

void define_fuse(Napi::Env env, Napi::Object exports) {
  exports.Set("fuseProbe", Napi::Function::New(env, FuseProbe));
  exports.Set("fuseDeviceCheck", Napi::Function::New(env, FuseDeviceCheck));
  exports.Set("fuseDetach", Napi::Function::New(env, FuseDetach));
}

}  // namespace xenfs

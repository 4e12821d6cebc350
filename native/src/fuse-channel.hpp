// A FUSE connection spoken directly over /dev/fuse, without libfuse: opening and checking the device, mounting,
// the INIT handshake (version and capability negotiation, including kernel passthrough), and registering backing
// files for passthrough. The native front end builds its request loop on this; `xenfs guest` uses a short probe
// (mount, INIT, unmount) to learn what the running kernel offers.
#pragma once

#include <cstdint>
#include <string>

namespace xenfs {

// /dev/fuse opened read-write and close-on-exec; fd or -errno.
int fuse_device_open();

// 0 when `fd` is an open /dev/fuse (character device 10:229), else -errno (-ENODEV for any other file). A
// descriptor that crosses a process boundary is checked before it is trusted with an ioctl.
int fuse_device_check(int fd);

struct FuseMountSpec {
  std::string dir;      // absolute mount point
  std::string fsname;   // the source shown in /proc/mounts
  std::string subtype;  // mounted as fuse.<subtype>
  bool allow_other = false;
  uint32_t uid = 0;     // the mount's owner (user_id=, group_id=)
  uint32_t gid = 0;
};

// Mounts the connection `fd` at spec.dir. 0 or -errno; `why` says what failed.
int fuse_mount(int fd, const FuseMountSpec& spec, std::string& why);

struct FuseNegotiated {
  uint32_t kernel_major = 0;
  uint32_t kernel_minor = 0;
  uint64_t kernel_flags = 0;  // every INIT flag the kernel offered (flags | flags2 << 32)
  uint32_t minor = 0;         // the minor version the connection now speaks
  uint64_t flags = 0;         // the flags agreed: offered by the kernel and wanted by us
  uint32_t max_write = 0;
  bool passthrough = false;   // reads, writes and mmap may be served from backing files
};

// Reads the kernel's INIT request from `fd` and answers it, asking for `wanted` INIT flags (the agreed set is
// what the kernel also offers) and writes of up to `max_write` bytes. 0 or -errno; `why` says what failed.
// Kernels older than fusek::kMinMinor are refused (-EPROTO) and the caller unmounts.
int fuse_negotiate(int fd, uint64_t wanted, uint32_t max_write, FuseNegotiated& out, std::string& why);

// Registers `file_fd` as a backing file on the connection: the id an OPEN reply names with FOPEN_PASSTHROUGH, or
// -errno (EPERM without CAP_SYS_ADMIN or without negotiated passthrough).
int fuse_backing_open(int fuse_fd, int file_fd);

// Drops a registration; files already open through it keep working. 0 or -errno.
int fuse_backing_close(int fuse_fd, int backing_id);

}  // namespace xenfs

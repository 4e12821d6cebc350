#include "fuse-channel.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "fuse-kernel.hpp"

namespace xenfs {

int fuse_device_open() {
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int fuse_device_check(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != fusek::kDevMajor || minor(st.st_rdev) != fusek::kDevMinor)
    return -ENODEV;
  return 0;
}

int fuse_mount(int fd, const FuseMountSpec& spec, std::string& why) {
  // The kernel parses these itself (fs/fuse/inode.c): the connection, the root's type, the owner, and whether
  // users other than the owner may enter. Permission checks stay with dom0, which sees every open and access.
  std::string data = "fd=" + std::to_string(fd) + ",rootmode=40000,user_id=" + std::to_string(spec.uid) +
                     ",group_id=" + std::to_string(spec.gid);
  if (spec.allow_other) data += ",allow_other";
  std::string type = spec.subtype.empty() ? "fuse" : "fuse." + spec.subtype;
  if (mount(spec.fsname.c_str(), spec.dir.c_str(), type.c_str(), MS_NOSUID | MS_NODEV, data.c_str()) < 0) {
    int err = errno;
    why = "mount(" + spec.dir + ", " + type + ") failed: " + strerror(err);
    return -err;
  }
  return 0;
}

namespace {

// The kernel refuses a read of /dev/fuse into a buffer smaller than one request can be; INIT is small, but a
// buffer sized for the largest write is what the request loop will use anyway.
constexpr size_t kReadBuffer = (1u << 20) + 4096;

int write_reply(int fd, uint64_t unique, int error, const void* body, size_t len) {
  fuse_out_header out{};
  out.len = static_cast<uint32_t>(sizeof out + (error == 0 ? len : 0));
  out.error = error;
  out.unique = unique;
  iovec iov[2] = {{&out, sizeof out}, {const_cast<void*>(body), error == 0 ? len : 0}};
  ssize_t n = writev(fd, iov, error == 0 && len > 0 ? 2 : 1);
  if (n < 0) return -errno;
  return n == static_cast<ssize_t>(out.len) ? 0 : -EIO;
}

}  // namespace

int fuse_negotiate(int fd, uint64_t wanted, uint32_t max_write, FuseNegotiated& out, std::string& why) {
  std::vector<uint8_t> buf(kReadBuffer);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      why = std::string("reading INIT from /dev/fuse failed: ") + strerror(err);
      return -err;
    }
    fuse_in_header in;
    // INIT of every protocol version carries at least major, minor, max_readahead and flags.
    if (static_cast<size_t>(n) < sizeof in + 16) {
      why = "short INIT request";
      return -EPROTO;
    }
    std::memcpy(&in, buf.data(), sizeof in);
    if (in.opcode != FUSE_INIT || in.len != static_cast<uint32_t>(n)) {
      why = "the first request was not a well-formed INIT";
      return -EPROTO;
    }
    fuse_init_in init{};
    std::memcpy(&init, buf.data() + sizeof in, std::min(sizeof init, static_cast<size_t>(n) - sizeof in));
    out.kernel_major = init.major;
    out.kernel_minor = init.minor;
    if (init.major > fusek::kMajor) {
      // The rule of FUSE's negotiation: answer with our major only, and the kernel sends INIT again in it.
      fusek::InitOut reply{};
      reply.major = fusek::kMajor;
      int rc = write_reply(fd, in.unique, 0, &reply, sizeof reply);
      if (rc < 0) return rc;
      continue;
    }
    if (init.major < fusek::kMajor || init.minor < fusek::kMinMinor) {
      write_reply(fd, in.unique, -EPROTO, nullptr, 0);
      why = "kernel FUSE protocol " + std::to_string(init.major) + "." + std::to_string(init.minor) +
            " is older than 7." + std::to_string(fusek::kMinMinor);
      return -EPROTO;
    }
    uint64_t offered = init.flags;
    if (init.flags & FUSE_INIT_EXT) offered |= uint64_t{init.flags2} << 32;
    out.kernel_flags = offered;
    out.minor = std::min(init.minor, fusek::kMinor);
    // FUSE_INIT_EXT must be echoed for flags2 to be read; FUSE_MAX_PAGES for max_pages.
    uint64_t agreed = (wanted | FUSE_INIT_EXT | FUSE_MAX_PAGES) & offered;
    out.flags = agreed;
    out.max_write = max_write;
    out.passthrough = (agreed & fusek::kPassthrough) != 0;

    fusek::InitOut reply{};
    reply.major = fusek::kMajor;
    reply.minor = out.minor;
    reply.max_readahead = init.max_readahead;
    reply.flags = static_cast<uint32_t>(agreed);
    reply.flags2 = static_cast<uint32_t>(agreed >> 32);
    reply.max_background = 64;
    reply.congestion_threshold = 48;
    reply.max_write = max_write;
    reply.time_gran = 1;
    reply.max_pages = static_cast<uint16_t>((max_write + 4095) / 4096);
    // Backing files live on ordinary filesystems (stack depth 0), so one level of stacking is enough; the kernel
    // enables passthrough only with a depth of at least 1.
    reply.max_stack_depth = out.passthrough ? 1 : 0;
    int rc = write_reply(fd, in.unique, 0, &reply, sizeof reply);
    if (rc < 0) {
      why = std::string("answering INIT failed: ") + strerror(-rc);
      return rc;
    }
    return 0;
  }
}

int fuse_backing_open(int fuse_fd, int file_fd) {
  fusek::BackingMap map{};
  map.fd = file_fd;
  int id = ioctl(fuse_fd, fusek::kIocBackingOpen, &map);
  return id < 0 ? -errno : id;
}

int fuse_backing_close(int fuse_fd, int backing_id) {
  uint32_t id = static_cast<uint32_t>(backing_id);
  return ioctl(fuse_fd, fusek::kIocBackingClose, &id) < 0 ? -errno : 0;
}

}  // namespace xenfs

// The FUSE kernel protocol as XenFS speaks it: Debian 12's <linux/fuse.h> (7.38) plus what 7.39..7.45 added
// that the native front end uses, written from the kernel's documented UAPI. Sizes are checked below so a
// header mismatch fails the build, not a mount.
#pragma once

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace xenfs::fusek {

// The protocol version the native front end is written against; the kernel's own may be older or newer, and the
// connection uses the smaller minor (FUSE's version negotiation).
constexpr uint32_t kMajor = 7;
constexpr uint32_t kMinor = 45;
// Below 7.31 the kernel lacks FUSE_INIT_EXT and the flags2 half of INIT; XenFS's native front end refuses it
// (the fuse-native front end remains for such kernels).
constexpr uint32_t kMinMinor = 31;

// INIT flags past 7.38 (bits 32.. travel in flags2).
constexpr uint64_t kDirectIoAllowMmap = 1ULL << 36;
constexpr uint64_t kPassthrough = 1ULL << 37;
constexpr uint64_t kNoExportSupport = 1ULL << 38;
constexpr uint64_t kHasResend = 1ULL << 39;
constexpr uint64_t kAllowIdmap = 1ULL << 40;
constexpr uint64_t kOverIoUring = 1ULL << 41;
constexpr uint64_t kRequestTimeout = 1ULL << 42;

// Open reply flag (7.40): serve this file's read, write and mmap from the backing file named by backing_id.
constexpr uint32_t kOpenPassthrough = 1u << 7;

// 7.40's fuse_init_out: `unused[7]` of 7.38 became max_stack_depth, then (7.43) request_timeout.
struct InitOut {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint16_t request_timeout;
  uint16_t unused[11];
};

// 7.40's fuse_open_out: the padding became the backing id.
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};

// FUSE_DEV_IOC_BACKING_OPEN's argument (7.40).
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};

constexpr unsigned long kDevIocMagic = 229;
constexpr unsigned long kIocBackingOpen = _IOW(kDevIocMagic, 1, BackingMap);
constexpr unsigned long kIocBackingClose = _IOW(kDevIocMagic, 2, uint32_t);

// Notifications a server writes unasked: a fuse_out_header with unique 0 and the code in `error`, then the body.
// INVAL_INODE drops an inode's cached attributes (off < 0) or its attributes and cached pages from `off` on;
// INVAL_ENTRY drops one name of a directory (the name follows the body, NUL-terminated, not counted in namelen).
constexpr int32_t kNotifyInvalInode = FUSE_NOTIFY_INVAL_INODE;
constexpr int32_t kNotifyInvalEntry = FUSE_NOTIFY_INVAL_ENTRY;
static_assert(kNotifyInvalInode == 2 && kNotifyInvalEntry == 3, "FUSE notify codes");
static_assert(sizeof(fuse_notify_inval_inode_out) == 24, "fuse_notify_inval_inode_out");
static_assert(sizeof(fuse_notify_inval_entry_out) == 16, "fuse_notify_inval_entry_out (7.38: flags)");

static_assert(sizeof(fuse_in_header) == 40, "fuse_in_header");
static_assert(sizeof(fuse_out_header) == 16, "fuse_out_header");
static_assert(sizeof(fuse_init_in) == 64, "fuse_init_in (7.36+)");
static_assert(sizeof(InitOut) == 64, "fuse_init_out");
static_assert(sizeof(InitOut) == sizeof(fuse_init_out), "7.40 reshaped fuse_init_out without changing its size");
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out), "fuse_open_out");
static_assert(sizeof(BackingMap) == 16, "fuse_backing_map");

// /dev/fuse is character device 10:229.
constexpr unsigned kDevMajor = 10;
constexpr unsigned kDevMinor = 229;

}  // namespace xenfs::fusek

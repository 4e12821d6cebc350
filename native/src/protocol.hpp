// XenFS wire protocol v1: slot layouts and constants. The contract is docs/protocol.md;
// core/protocol/layout.ts is the TypeScript side of the same table. Change all three together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xenfs::proto {

constexpr uint32_t kVersion = 1;
constexpr size_t kSlotSize = 512;
constexpr size_t kRingHeaderSize = 64;
constexpr size_t kPageSize = 4096;
constexpr uint32_t kMaxSegs = 32;
constexpr size_t kInlineOffset = 192;
constexpr size_t kInlineCapacity = kSlotSize - kInlineOffset;  // 320
constexpr size_t kMaxData = kMaxSegs * kPageSize;               // 128 KiB
constexpr size_t kMaxName = 255;
constexpr size_t kMaxPath = 4096;
constexpr size_t kSetattrPayload = 48;

constexpr uint16_t kFlagPayloadExt = 1;
// OPEN/CREATE: register the opened file as a backing file on the guest's attached FUSE connection
// (docs/native-frontend.md); the reply then carries kRspBacking and the id.
constexpr uint16_t kFlagWantBacking = 2;
// Response flags.
constexpr uint32_t kRspBacking = 1;  // Response.backing_id is a FUSE backing id for this handle
// Entry and attribute replies: another guest has this file open for writing (and may write it without dom0 seeing),
// so these attributes must not be cached (docs/native-frontend.md).
constexpr uint32_t kRspVolatile = 2;

enum Op : uint8_t {
  kLookup = 1, kForget = 2, kGetattr = 3, kSetattr = 4, kReadlink = 5, kOpen = 6, kCreate = 7,
  kRead = 8, kWrite = 9, kFlush = 10, kFsync = 11, kRelease = 12, kOpendir = 13, kReaddir = 14,
  kMkdir = 16, kUnlink = 17, kRmdir = 18, kRename = 19, kSymlink = 20, kLink = 21, kStatfs = 22,
  kGetxattr = 23, kSetxattr = 24, kListxattr = 25, kRemovexattr = 26, kFallocate = 27, kAccess = 28,
  kMknod = 29, kWalk = 30, kGetlk = 31, kSetlk = 32, kInterrupt = 33,
  kOpCount = 34,
};

enum Feature : uint32_t {
  kFeatXattr = 1, kFeatRenameFlags = 2, kFeatFallocate = 4, kFeatMknod = 8,
  // Xen's feature-persistent: the guest grants its data pages once, writable, and dom0 keeps them mapped.
  kFeatPersistentGrants = 16,
};
constexpr uint32_t kAllFeatures = kFeatXattr | kFeatRenameFlags | kFeatFallocate | kFeatMknod | kFeatPersistentGrants;

// setattr valid mask (arg32a)
enum SetattrValid : uint32_t {
  kSetMode = 1, kSetUid = 2, kSetGid = 4, kSetSize = 8, kSetAtime = 16, kSetMtime = 32,
  kSetAtimeNow = 64, kSetMtimeNow = 128,
};

constexpr uint32_t kReaddirEof = 1;
// READDIR arg32a: list '.' and '..' too (the FUSE front end passes the listing to the kernel as it is).
constexpr uint32_t kReaddirDots = 1;
// WALK arg32a: answer the attributes only, keeping no node (no FORGET owed): a stat in one round trip.
constexpr uint32_t kWalkPeek = 1;

// File locks (GETLK, SETLK): the FileLock payload, arg32a flags, and lock types as Linux numbers them.
constexpr size_t kLockPayload = 24;
constexpr uint32_t kLkFlock = 1;  // a flock(2) lock: whole file, a namespace apart from POSIX and OFD locks
constexpr uint32_t kLkWait = 2;   // SETLK only: wait until granted (F_SETLKW, blocking flock)
constexpr uint32_t kLockRead = 0, kLockWrite = 1, kLockUnlock = 2;  // F_RDLCK, F_WRLCK, F_UNLCK
// The largest file offset (the kernel's OFFSET_MAX): an end at or past it means "to the end of the file", and
// replies say so with it, as FUSE's own fuse_file_lock does.
constexpr uint64_t kOffsetMax = INT64_MAX;
// RELEASE arg32a: also drop the flock locks of the lock owner in arg64 (FUSE_RELEASE_FLOCK_UNLOCK).
constexpr uint32_t kReleaseFlockUnlock = 1;

#pragma pack(push, 1)
struct Request {
  uint64_t id;
  uint8_t op;
  uint8_t nsegs;
  uint16_t flags;
  uint32_t payload_len;
  uint64_t node;
  uint64_t fh;
  uint64_t offset;
  uint64_t arg64;
  uint32_t len;
  uint32_t arg32a;
  uint32_t arg32b;
  uint16_t name1_len;
  uint16_t name2_len;
  uint32_t segs[kMaxSegs];
  uint8_t inline_data[kInlineCapacity];
};

struct Attr {
  uint64_t ino, size, blocks;
  int64_t atime_s, mtime_s, ctime_s;
  uint32_t atime_ns, mtime_ns, ctime_ns;
  uint32_t mode, nlink, uid, gid, rdev, blksize, pad;
};

struct Statfs {
  uint64_t blocks, bfree, bavail, files, ffree;
  uint32_t bsize, namelen, frsize;
};

// GETLK/SETLK payload, and GETLK's reply: FUSE's fuse_file_lock. end is inclusive.
struct FileLock {
  uint64_t start, end;
  uint32_t type, pid;
};

struct Response {
  uint64_t id;
  int32_t status;
  uint32_t len;
  uint32_t flags;
  int32_t backing_id;
  uint64_t fh;
  uint64_t node;
  uint64_t generation;
  union {
    Attr attr;
    Statfs statfs;
    FileLock lock;
  };
  uint8_t rest[kSlotSize - 48 - sizeof(Attr)];
};

struct SetattrPayload {
  uint32_t mode, uid, gid, pad;
  int64_t atime_s;
  uint32_t atime_ns, mtime_ns;
  int64_t mtime_s;
  uint64_t size;
};

struct DirentHeader {
  uint64_t ino;
  uint64_t next;
  uint16_t namelen;
  uint8_t type;
  uint8_t pad0;
  uint32_t pad1;
};

struct RingHeader {
  uint32_t req_prod;
  uint32_t req_event;
  uint32_t rsp_prod;
  uint32_t rsp_event;
  uint8_t pad[48];
};
#pragma pack(pop)

static_assert(sizeof(Request) == kSlotSize, "request slot is 512 bytes");
static_assert(sizeof(Response) == kSlotSize, "response slot is 512 bytes");
static_assert(offsetof(Request, segs) == 64, "segs at 64");
static_assert(offsetof(Request, inline_data) == kInlineOffset, "inline at 192");
static_assert(offsetof(Response, attr) == 48, "attr at 48");
static_assert(sizeof(Attr) == 88, "attr is 88 bytes");
static_assert(sizeof(Statfs) == 52, "statfs is 52 bytes");
static_assert(sizeof(SetattrPayload) == kSetattrPayload, "setattr payload is 48 bytes");
static_assert(sizeof(FileLock) == kLockPayload, "lock payload is 24 bytes");
static_assert(offsetof(Response, lock) == 48, "a GETLK reply's lock at 48");
static_assert(sizeof(DirentHeader) == 24, "dirent header is 24 bytes");
static_assert(sizeof(RingHeader) == kRingHeaderSize, "ring header is 64 bytes");

}  // namespace xenfs::proto

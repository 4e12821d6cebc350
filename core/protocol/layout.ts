// Byte layout of wire protocol v1 (docs/protocol.md): sizes and field offsets as named constants, so encode.ts
// and decode.ts never carry a bare number. native/src/protocol.hpp is the C++ view; change all three together.
// All integers are little-endian.

export const SLOT_SIZE = 512;
export const RING_HEADER_SIZE = 64;
export const PAGE_SIZE = 4096;
export const MAX_SEGS = 32;
export const INLINE_OFFSET = 192;
/** Bytes of payload that fit in the slot itself. */
export const INLINE_CAPACITY = SLOT_SIZE - INLINE_OFFSET; // 320
/** Largest payload or output of one request: every segment full. */
export const MAX_DATA = MAX_SEGS * PAGE_SIZE; // 128 KiB
/** Longest name (bytes of UTF-8). */
export const MAX_NAME = 255;
/** Longest path (WALK path, symlink target), bytes of UTF-8. */
export const MAX_PATH = 4096;
/** Largest xattr value Linux accepts (XATTR_SIZE_MAX). */
export const MAX_XATTR_VALUE = 65536;

/** Request slot field offsets. */
export const ReqOff = {
  ID: 0, // u64
  OP: 8, // u8
  NSEGS: 9, // u8
  FLAGS: 10, // u16
  PAYLOAD_LEN: 12, // u32
  NODE: 16, // u64
  FH: 24, // u64
  OFFSET: 32, // u64
  ARG64: 40, // u64
  LEN: 48, // u32
  ARG32A: 52, // u32
  ARG32B: 56, // u32
  NAME1_LEN: 60, // u16
  NAME2_LEN: 62, // u16
  SEGS: 64, // u32[32]
  INLINE: INLINE_OFFSET, // u8[320]
} as const;

/** Response slot field offsets. Attr and statfs share offset 48 (a union). */
export const RspOff = {
  ID: 0, // u64
  STATUS: 8, // i32
  LEN: 12, // u32
  FLAGS: 16, // u32
  BACKING_ID: 20, // i32: with ResponseFlag.BACKING
  FH: 24, // u64
  NODE: 32, // u64
  GENERATION: 40, // u64
  ATTR: 48, // attr (88)
  STATFS: 48, // statfs (52)
  LOCK: 48, // FileLock (24): GETLK
} as const;

/** attr record, relative to its start. */
export const ATTR_SIZE = 88;
export const AttrOff = {
  INO: 0, // u64
  SIZE: 8, // u64
  BLOCKS: 16, // u64
  ATIME_S: 24, // i64
  MTIME_S: 32, // i64
  CTIME_S: 40, // i64
  ATIME_NS: 48, // u32
  MTIME_NS: 52, // u32
  CTIME_NS: 56, // u32
  MODE: 60, // u32
  NLINK: 64, // u32
  UID: 68, // u32
  GID: 72, // u32
  RDEV: 76, // u32
  BLKSIZE: 80, // u32
  PAD: 84, // u32
} as const;

/** statfs record, relative to its start. */
export const STATFS_SIZE = 52;
export const StatfsOff = {
  BLOCKS: 0, // u64
  BFREE: 8, // u64
  BAVAIL: 16, // u64
  FILES: 24, // u64
  FFREE: 32, // u64
  BSIZE: 40, // u32
  NAMELEN: 44, // u32
  FRSIZE: 48, // u32
} as const;

/** SETATTR's fixed payload, relative to its start. */
export const SETATTR_PAYLOAD_SIZE = 48;
export const SetattrOff = {
  MODE: 0, // u32
  UID: 4, // u32
  GID: 8, // u32
  PAD: 12, // u32
  ATIME_S: 16, // i64
  ATIME_NS: 24, // u32
  MTIME_NS: 28, // u32
  MTIME_S: 32, // i64
  SIZE: 40, // u64
} as const;

/** The FileLock record: GETLK/SETLK's payload and GETLK's reply (FUSE's fuse_file_lock). */
export const LOCK_PAYLOAD_SIZE = 24;
export const LockOff = {
  START: 0, // u64
  END: 8, // u64, inclusive
  TYPE: 16, // u32: LockType
  PID: 20, // u32
} as const;
/** The largest file offset (the kernel's OFFSET_MAX): a lock ending there runs to the end of the file. */
export const OFFSET_MAX = 0x7fff_ffff_ffff_ffffn;

/** Readdir record header; the name follows, and the record is padded to DIRENT_ALIGN bytes. */
export const DIRENT_HEADER_SIZE = 24;
export const DIRENT_ALIGN = 8;
export const DirentOff = {
  INO: 0, // u64
  NEXT: 8, // u64
  NAMELEN: 16, // u16
  TYPE: 18, // u8
  PAD0: 19, // u8
  PAD1: 20, // u32
  NAME: DIRENT_HEADER_SIZE,
} as const;

/** Size of one readdir record holding a name of `nameLen` bytes. */
export function direntSize(nameLen: number): number {
  return DIRENT_HEADER_SIZE + Math.ceil(nameLen / DIRENT_ALIGN) * DIRENT_ALIGN;
}

export const U64_MAX = 0xffff_ffff_ffff_ffffn;
export const U32_MAX = 0xffff_ffff;
export const I64_MIN = -(2n ** 63n);
export const I64_MAX = 2n ** 63n - 1n;

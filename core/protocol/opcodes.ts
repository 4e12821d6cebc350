// Operation numbers, feature bits and flag bits of wire protocol v1 (docs/protocol.md). The C++ side is
// native/src/protocol.hpp; change all three together.

export const PROTOCOL_VERSION = 1;

/** Opcodes. 15 is unassigned; RELEASE closes file and directory handles alike. */
export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  OPEN: 6,
  CREATE: 7,
  READ: 8,
  WRITE: 9,
  FLUSH: 10,
  FSYNC: 11,
  RELEASE: 12,
  OPENDIR: 13,
  READDIR: 14,
  MKDIR: 16,
  UNLINK: 17,
  RMDIR: 18,
  RENAME: 19,
  SYMLINK: 20,
  LINK: 21,
  STATFS: 22,
  GETXATTR: 23,
  SETXATTR: 24,
  LISTXATTR: 25,
  REMOVEXATTR: 26,
  FALLOCATE: 27,
  ACCESS: 28,
  MKNOD: 29,
  WALK: 30,
  /** The first lock that conflicts with the one described (a FileLock payload), or none. */
  GETLK: 31,
  /** Set, convert or remove a lock; with LockFlag.WAIT it answers once granted. */
  SETLK: 32,
  /** Ends the guest's waiting SETLK whose request id is in arg64 (it answers -EINTR). */
  INTERRUPT: 33,
} as const;

export type OpName = keyof typeof Op;
export type OpCode = (typeof Op)[OpName];

/** One past the highest opcode; the server's dispatch table has this many entries. */
export const OP_COUNT = 34;

const OP_NAMES = new Map<number, OpName>(
  (Object.entries(Op) as [OpName, OpCode][]).map(([name, code]) => [code, name]),
);

/** True when `code` is an assigned opcode (the peer may send anything in the byte). */
export function isOpCode(code: number): code is OpCode {
  return OP_NAMES.has(code);
}

/** The name of an opcode, or `OP_<n>` for unassigned numbers (used in messages only). */
export function opName(code: number): string {
  return OP_NAMES.get(code) ?? `OP_${code}`;
}

/** Feature bits, intersected at connect. */
export const Feature = {
  XATTR: 1,
  RENAME_FLAGS: 2,
  FALLOCATE: 4,
  MKNOD: 8,
  /** Xen's feature-persistent: data pages stay granted and mapped for the life of the connection. */
  PERSISTENT_GRANTS: 16,
} as const;
export const ALL_FEATURES =
  Feature.XATTR | Feature.RENAME_FLAGS | Feature.FALLOCATE | Feature.MKNOD | Feature.PERSISTENT_GRANTS;

/** SETATTR's valid mask (arg32a). */
export const SetattrValid = {
  MODE: 1,
  UID: 2,
  GID: 4,
  SIZE: 8,
  ATIME: 16,
  MTIME: 32,
  ATIME_NOW: 64,
  MTIME_NOW: 128,
} as const;

/** Request `flags` bits. */
export const RequestFlag = {
  /** The payload is in the segments (ring) or follows the slot (stream), not inline. */
  PAYLOAD_EXT: 1,
  /** OPEN/CREATE: register the file as a FUSE backing file on the guest's attached connection. */
  WANT_BACKING: 2,
} as const;

/** Response `flags` bits: READDIR_EOF on READDIR, BACKING on OPEN/CREATE, VOLATILE on entry and attr replies. */
export const ResponseFlag = {
  READDIR_EOF: 1,
  /** `backing_id` holds the FUSE backing id registered for this handle. */
  BACKING: 1,
  /** Another guest has the file open for writing: do not cache these attributes (a zero attr timeout). */
  VOLATILE: 2,
} as const;
/** READDIR arg32a: list '.' and '..' as well. */
export const READDIR_DOTS = 1;
/** WALK arg32a: attributes only, no node kept (nothing to FORGET). */
export const WALK_PEEK = 1;

export const READDIR_EOF = ResponseFlag.READDIR_EOF;

/** GETLK/SETLK arg32a. */
export const LockFlag = {
  /** A flock(2) lock: the whole file, in a namespace apart from POSIX and OFD locks. */
  FLOCK: 1,
  /** SETLK only: wait until granted (F_SETLKW, a blocking flock). */
  WAIT: 2,
} as const;

/** A FileLock's type, as Linux numbers F_RDLCK, F_WRLCK and F_UNLCK. */
export const LockType = {
  RDLCK: 0,
  WRLCK: 1,
  UNLCK: 2,
} as const;
export type LockTypeCode = (typeof LockType)[keyof typeof LockType];

/** RELEASE arg32a: also drop the flock locks of the lock owner in arg64 (FUSE_RELEASE_FLOCK_UNLOCK). */
export const RELEASE_FLOCK_UNLOCK = 1;

/** RENAME's arg32a, as Linux renameat2(2). */
export const RenameFlag = {
  NOREPLACE: 1,
  EXCHANGE: 2,
} as const;

/** SETXATTR's arg32a, as Linux setxattr(2). */
export const XattrFlag = {
  CREATE: 1,
  REPLACE: 2,
} as const;

/** ACCESS's arg32a, as access(2). */
export const AccessMask = {
  F_OK: 0,
  X_OK: 1,
  W_OK: 2,
  R_OK: 4,
} as const;

/** Readdir record `type` (d_type). */
export const DirentType = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
} as const;

/** File type bits of `mode` (S_IFMT and friends), Linux values. */
export const FileType = {
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
} as const;

/** Linux open(2) flags carried in OPEN/CREATE arg32a (x86-64/arm64 generic values). */
export const OpenFlag = {
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_ACCMODE: 3,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NOCTTY: 0o400,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_DIRECT: 0o40000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_SYNC: 0o4010000,
} as const;

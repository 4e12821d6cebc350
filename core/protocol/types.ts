// Values the wire carries, as TypeScript sees them after decoding (and before encoding). Identifiers the peer
// chooses (ids, nodes, handles, inode numbers, cookies) are bigint: opaque and full-range. Sizes and counts are
// numbers, and a decoder refuses any above 2^53 rather than round it.

/** A u64 field being encoded: bigint for the full range, or a non-negative safe integer. */
export type U64 = bigint | number;

/** Seconds and nanoseconds, as the wire carries times. `nsec` is 0..999,999,999. */
export interface Timespec {
  sec: number;
  nsec: number;
}

/** Attributes as the wire carries them. `ino` is opaque and full-range; sizes are safe integers. */
export interface Attr {
  ino: bigint;
  size: number;
  blocks: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

/** STATFS reply. */
export interface StatfsInfo {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** One readdir record. `next` is the cookie that resumes after this entry. */
export interface DirentRecord {
  name: Buffer;
  ino: bigint;
  type: number;
  next: bigint;
}


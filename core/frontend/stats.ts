// What GuestFs returns for stat and statfs: shaped like Node's fs.Stats / fs.StatFs so code written against
// fs/promises reads the same, plus the nanosecond fields the wire carries.
import type { Attr, StatfsInfo, Timespec } from '../protocol/types.ts';
import { FileType } from '../protocol/opcodes.ts';

const NS_PER_SEC = 1_000_000_000n;

function toNs(t: Timespec): bigint {
  return BigInt(t.sec) * NS_PER_SEC + BigInt(t.nsec);
}

function toMs(t: Timespec): number {
  return t.sec * 1000 + t.nsec / 1e6;
}

/** File attributes. `ino` is Number(ino): exact below 2^53, like Node's non-bigint Stats; `inoBig` is exact. */
export class Stats {
  readonly dev = 0;
  readonly ino: number;
  readonly inoBig: bigint;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  /** Bytes. */
  readonly size: number;
  readonly blksize: number;
  /** 512-byte blocks allocated. */
  readonly blocks: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** Nanoseconds since the epoch. */
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;

  constructor(attr: Attr) {
    this.inoBig = attr.ino;
    this.ino = Number(attr.ino);
    this.mode = attr.mode;
    this.nlink = attr.nlink;
    this.uid = attr.uid;
    this.gid = attr.gid;
    this.rdev = attr.rdev;
    this.size = attr.size;
    this.blksize = attr.blksize;
    this.blocks = attr.blocks;
    this.atimeMs = toMs(attr.atime);
    this.mtimeMs = toMs(attr.mtime);
    this.ctimeMs = toMs(attr.ctime);
    this.atimeNs = toNs(attr.atime);
    this.mtimeNs = toNs(attr.mtime);
    this.ctimeNs = toNs(attr.ctime);
  }

  get atime(): Date {
    return new Date(this.atimeMs);
  }

  get mtime(): Date {
    return new Date(this.mtimeMs);
  }

  get ctime(): Date {
    return new Date(this.ctimeMs);
  }

  #type(): number {
    return this.mode & FileType.S_IFMT;
  }

  isFile(): boolean {
    return this.#type() === FileType.S_IFREG;
  }

  isDirectory(): boolean {
    return this.#type() === FileType.S_IFDIR;
  }

  isSymbolicLink(): boolean {
    return this.#type() === FileType.S_IFLNK;
  }

  isFIFO(): boolean {
    return this.#type() === FileType.S_IFIFO;
  }

  isSocket(): boolean {
    return this.#type() === FileType.S_IFSOCK;
  }

  isBlockDevice(): boolean {
    return this.#type() === FileType.S_IFBLK;
  }

  isCharacterDevice(): boolean {
    return this.#type() === FileType.S_IFCHR;
  }
}

/** Filesystem statistics of the export holding a path, shaped like Node's fs.StatFs. */
export class StatFs {
  /** The wire carries no filesystem magic; always 0. */
  readonly type = 0;
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly namelen: number;
  readonly frsize: number;

  constructor(s: StatfsInfo) {
    this.bsize = s.bsize;
    this.blocks = s.blocks;
    this.bfree = s.bfree;
    this.bavail = s.bavail;
    this.files = s.files;
    this.ffree = s.ffree;
    this.namelen = s.namelen;
    this.frsize = s.frsize;
  }
}

/** True when a mode's type bits say symlink; the resolver asks this of raw attrs. */
export function isSymlinkMode(mode: number): boolean {
  return (mode & FileType.S_IFMT) === FileType.S_IFLNK;
}

// Pure decoders for wire protocol v1 (docs/protocol.md). Everything they read came from an untrusted peer:
// every length is checked before it is used, and anything that breaks the contract throws ProtocolError —
// never RangeError or TypeError — so a caller can disconnect that one peer and go on.
import { ProtocolError } from '../errors.ts';
import {
  ATTR_SIZE, AttrOff, DIRENT_ALIGN, DIRENT_HEADER_SIZE, DirentOff, INLINE_CAPACITY, MAX_DATA, MAX_NAME, MAX_SEGS,
  ReqOff, RspOff, SLOT_SIZE, STATFS_SIZE, StatfsOff, direntSize,
} from './layout.ts';
import { RequestFlag } from './opcodes.ts';
import type { Attr, DirentRecord, StatfsInfo, Timespec } from './types.ts';

/** Largest errno Linux uses; a status below -MAX_ERRNO is not an errno. */
export const MAX_ERRNO = 4095;

/** The fixed header of every response. fh/node/generation are meaningful only for the ops that set them. */
export interface ResponseHeader {
  id: bigint;
  /** 0, or a negative errno in -4095..-1. */
  status: number;
  len: number;
  flags: number;
  fh: bigint;
  node: bigint;
  generation: bigint;
}

/** An entry reply (LOOKUP, WALK, CREATE, MKDIR, SYMLINK, LINK, MKNOD): the node and its attributes. */
export interface Entry {
  node: bigint;
  generation: bigint;
  attr: Attr;
}

function checkSlot(slot: Uint8Array, what: string): Buffer {
  if (slot.byteLength !== SLOT_SIZE) throw new ProtocolError(`${what} slot is ${slot.byteLength} bytes, not ${SLOT_SIZE}`);
  return Buffer.from(slot.buffer, slot.byteOffset, slot.byteLength);
}

function safe(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`${field} ${value} exceeds 2^53`);
  return Number(value);
}

function safeSigned(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new ProtocolError(`${field} ${value} is outside the safe integer range`);
  }
  return Number(value);
}

/** Decode the header of a response slot; the status must be 0 or a negative errno. */
export function decodeResponse(slot: Uint8Array): ResponseHeader {
  const buf = checkSlot(slot, 'response');
  const status = buf.readInt32LE(RspOff.STATUS);
  if (status > 0 || status < -MAX_ERRNO) throw new ProtocolError(`response status ${status} is not 0 or -errno`);
  return {
    id: buf.readBigUInt64LE(RspOff.ID),
    status,
    len: buf.readUInt32LE(RspOff.LEN),
    flags: buf.readUInt32LE(RspOff.FLAGS),
    fh: buf.readBigUInt64LE(RspOff.FH),
    node: buf.readBigUInt64LE(RspOff.NODE),
    generation: buf.readBigUInt64LE(RspOff.GENERATION),
  };
}

function timespec(buf: Buffer, secAt: number, nsecAt: number, field: string): Timespec {
  const nsec = buf.readUInt32LE(nsecAt);
  if (nsec > 999_999_999) throw new ProtocolError(`${field} nsec ${nsec} is out of range`);
  return { sec: safeSigned(buf.readBigInt64LE(secAt), field), nsec };
}

/** Decode an attr record at `at` of `buf` (a response slot: at = RspOff.ATTR). */
export function decodeAttr(buf: Uint8Array, at: number = RspOff.ATTR): Attr {
  if (!Number.isInteger(at) || at < 0 || at + ATTR_SIZE > buf.byteLength) throw new ProtocolError('attr runs past its buffer');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    ino: b.readBigUInt64LE(at + AttrOff.INO),
    size: safe(b.readBigUInt64LE(at + AttrOff.SIZE), 'attr size'),
    blocks: safe(b.readBigUInt64LE(at + AttrOff.BLOCKS), 'attr blocks'),
    atime: timespec(b, at + AttrOff.ATIME_S, at + AttrOff.ATIME_NS, 'atime'),
    mtime: timespec(b, at + AttrOff.MTIME_S, at + AttrOff.MTIME_NS, 'mtime'),
    ctime: timespec(b, at + AttrOff.CTIME_S, at + AttrOff.CTIME_NS, 'ctime'),
    mode: b.readUInt32LE(at + AttrOff.MODE),
    nlink: b.readUInt32LE(at + AttrOff.NLINK),
    uid: b.readUInt32LE(at + AttrOff.UID),
    gid: b.readUInt32LE(at + AttrOff.GID),
    rdev: b.readUInt32LE(at + AttrOff.RDEV),
    blksize: b.readUInt32LE(at + AttrOff.BLKSIZE),
  };
}

/** Decode an entry reply: node, generation and attr. Node 0 names nothing and is refused. */
export function decodeEntry(slot: Uint8Array): Entry {
  const buf = checkSlot(slot, 'response');
  const node = buf.readBigUInt64LE(RspOff.NODE);
  if (node === 0n) throw new ProtocolError('entry reply names node 0');
  return { node, generation: buf.readBigUInt64LE(RspOff.GENERATION), attr: decodeAttr(buf, RspOff.ATTR) };
}

/** Decode a STATFS reply's record. */
export function decodeStatfs(slot: Uint8Array): StatfsInfo {
  const buf = checkSlot(slot, 'response');
  const at = RspOff.STATFS;
  if (at + STATFS_SIZE > buf.length) throw new ProtocolError('statfs runs past the slot');
  return {
    blocks: safe(buf.readBigUInt64LE(at + StatfsOff.BLOCKS), 'statfs blocks'),
    bfree: safe(buf.readBigUInt64LE(at + StatfsOff.BFREE), 'statfs bfree'),
    bavail: safe(buf.readBigUInt64LE(at + StatfsOff.BAVAIL), 'statfs bavail'),
    files: safe(buf.readBigUInt64LE(at + StatfsOff.FILES), 'statfs files'),
    ffree: safe(buf.readBigUInt64LE(at + StatfsOff.FFREE), 'statfs ffree'),
    bsize: buf.readUInt32LE(at + StatfsOff.BSIZE),
    namelen: buf.readUInt32LE(at + StatfsOff.NAMELEN),
    frsize: buf.readUInt32LE(at + StatfsOff.FRSIZE),
  };
}

/**
 * Decode the readdir records in the first `len` bytes of `buf`. Every record must lie wholly inside `len`,
 * start 8-byte aligned, and carry a 1..255-byte name. The names are copies: `buf` may be a shared page.
 */
export function decodeDirents(buf: Uint8Array, len: number): DirentRecord[] {
  if (!Number.isInteger(len) || len < 0 || len > buf.byteLength) {
    throw new ProtocolError(`readdir length ${len} exceeds its ${buf.byteLength}-byte buffer`);
  }
  if (len % DIRENT_ALIGN !== 0) throw new ProtocolError(`readdir length ${len} is not a multiple of ${DIRENT_ALIGN}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: DirentRecord[] = [];
  let at = 0;
  while (at < len) {
    if (at + DIRENT_HEADER_SIZE > len) throw new ProtocolError(`readdir record at ${at} has a truncated header`);
    const nameLen = b.readUInt16LE(at + DirentOff.NAMELEN);
    if (nameLen === 0 || nameLen > MAX_NAME) throw new ProtocolError(`readdir record at ${at} has name length ${nameLen}`);
    const size = direntSize(nameLen);
    if (at + size > len) throw new ProtocolError(`readdir record at ${at} runs past ${len}`);
    const name = Buffer.from(b.subarray(at + DIRENT_HEADER_SIZE, at + DIRENT_HEADER_SIZE + nameLen));
    if (name.includes(0) || name.includes(0x2f)) throw new ProtocolError(`readdir record at ${at} has a NUL or '/'`);
    records.push({
      name,
      ino: b.readBigUInt64LE(at + DirentOff.INO),
      next: b.readBigUInt64LE(at + DirentOff.NEXT),
      type: b.readUInt8(at + DirentOff.TYPE),
    });
    at += size;
  }
  return records;
}

/** A request as the server sees it (for tests and tools; the real server decodes in C++). */
export interface DecodedRequest {
  id: bigint;
  /** Raw opcode; an unassigned one is not malformed (the server answers ENOSYS). */
  op: number;
  nsegs: number;
  flags: number;
  payloadLen: number;
  node: bigint;
  fh: bigint;
  offset: bigint;
  arg64: bigint;
  len: number;
  arg32a: number;
  arg32b: number;
  segs: number[];
  name1: Buffer;
  name2: Buffer;
  data: Buffer;
}

/**
 * Decode a request slot. With F_PAYLOAD_EXT the payload must be given (the stream bytes after the slot, or the
 * bytes copied out of the granted pages) and be exactly payload_len long. Strings are returned raw: whether a
 * name is valid is an errno answer (validateName), not a protocol error.
 */
export function decodeRequest(slot: Uint8Array, payload: Uint8Array | null = null): DecodedRequest {
  const buf = checkSlot(slot, 'request');
  const nsegs = buf.readUInt8(ReqOff.NSEGS);
  const flags = buf.readUInt16LE(ReqOff.FLAGS);
  const payloadLen = buf.readUInt32LE(ReqOff.PAYLOAD_LEN);
  const name1Len = buf.readUInt16LE(ReqOff.NAME1_LEN);
  const name2Len = buf.readUInt16LE(ReqOff.NAME2_LEN);
  const len = buf.readUInt32LE(ReqOff.LEN);
  if (nsegs > MAX_SEGS) throw new ProtocolError(`nsegs ${nsegs} exceeds ${MAX_SEGS}`);
  if ((flags & ~(RequestFlag.PAYLOAD_EXT | RequestFlag.WANT_BACKING)) !== 0) {
    throw new ProtocolError(`unknown request flags ${flags}`);
  }
  if (len > MAX_DATA) throw new ProtocolError(`output length ${len} exceeds ${MAX_DATA}`);
  if (payloadLen > MAX_DATA) throw new ProtocolError(`payload length ${payloadLen} exceeds ${MAX_DATA}`);
  if (name1Len + name2Len > payloadLen) throw new ProtocolError('name lengths exceed the payload');
  let body: Buffer;
  if ((flags & RequestFlag.PAYLOAD_EXT) !== 0) {
    if (payload === null) throw new ProtocolError('F_PAYLOAD_EXT set but no payload given');
    if (payload.byteLength !== payloadLen) {
      throw new ProtocolError(`payload is ${payload.byteLength} bytes, payload_len says ${payloadLen}`);
    }
    body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  } else {
    if (payloadLen > INLINE_CAPACITY) throw new ProtocolError(`inline payload ${payloadLen} exceeds ${INLINE_CAPACITY}`);
    body = buf.subarray(ReqOff.INLINE, ReqOff.INLINE + payloadLen);
  }
  const segs: number[] = [];
  for (let i = 0; i < nsegs; i++) segs.push(buf.readUInt32LE(ReqOff.SEGS + 4 * i));
  return {
    id: buf.readBigUInt64LE(ReqOff.ID),
    op: buf.readUInt8(ReqOff.OP),
    nsegs,
    flags,
    payloadLen,
    node: buf.readBigUInt64LE(ReqOff.NODE),
    fh: buf.readBigUInt64LE(ReqOff.FH),
    offset: buf.readBigUInt64LE(ReqOff.OFFSET),
    arg64: buf.readBigUInt64LE(ReqOff.ARG64),
    len,
    arg32a: buf.readUInt32LE(ReqOff.ARG32A),
    arg32b: buf.readUInt32LE(ReqOff.ARG32B),
    segs,
    // Copies, so the caller may keep them after the slot is reused.
    name1: Buffer.from(body.subarray(0, name1Len)),
    name2: Buffer.from(body.subarray(name1Len, name1Len + name2Len)),
    data: Buffer.from(body.subarray(name1Len + name2Len)),
  };
}

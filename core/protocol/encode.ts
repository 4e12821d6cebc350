// Pure encoders for wire protocol v1 (docs/protocol.md). encodeRequest is the client's hot path; the response
// and readdir encoders exist for tests, tools and TypeScript peers (the real server encodes in C++).
// Caller bugs (an out-of-range integer) throw RangeError; bad names and paths throw ErrnoError, as the
// server would answer them, before anything is sent.
import { LimitError } from '../errors.ts';
import {
  AttrOff, DIRENT_HEADER_SIZE, DirentOff, INLINE_CAPACITY, I64_MAX, I64_MIN, MAX_DATA, MAX_NAME, ReqOff, RspOff,
  SLOT_SIZE, StatfsOff, U32_MAX, U64_MAX, direntSize,
} from './layout.ts';
import { type WireString, validateName, validatePath, validateTarget } from './names.ts';
import { Op, type OpCode, RequestFlag, opName } from './opcodes.ts';
import type { Attr, DirentRecord, StatfsInfo, U64 } from './types.ts';

/** What a request carries; unset fields are 0 / absent. `id` and `segs` belong to the transport. */
export interface RequestSpec {
  op: OpCode;
  node?: U64;
  fh?: U64;
  offset?: U64;
  arg64?: U64;
  /** Output bytes asked for (READ, READDIR, READLINK, GETXATTR, LISTXATTR); at most MAX_DATA. */
  len?: number;
  arg32a?: number;
  arg32b?: number;
  name1?: WireString;
  name2?: WireString;
  data?: Uint8Array;
}

/** An encoded request: the 512-byte slot and, when F_PAYLOAD_EXT is set, the payload that travels beside it. */
export interface EncodedRequest {
  slot: Buffer;
  payload: Buffer | null;
  /** Output bytes the response may carry (the request's len for output operations, else 0). */
  outLen: number;
}

type StringKind = 'name' | 'path' | 'target';

// Which strings each operation carries and what rules they obey; an op missing here carries none. The same
// table as the server's (native/src/request-engine.cpp), so a string refused there is refused here first.
const STRINGS: Partial<Record<OpCode, readonly StringKind[]>> = {
  [Op.LOOKUP]: ['name'],
  [Op.CREATE]: ['name'],
  [Op.MKDIR]: ['name'],
  [Op.UNLINK]: ['name'],
  [Op.RMDIR]: ['name'],
  [Op.RENAME]: ['name', 'name'],
  [Op.SYMLINK]: ['name', 'target'],
  [Op.LINK]: ['name'],
  [Op.GETXATTR]: ['name'],
  [Op.SETXATTR]: ['name'],
  [Op.REMOVEXATTR]: ['name'],
  [Op.MKNOD]: ['name'],
  [Op.WALK]: ['path'],
};

/** Operations whose response carries `len` bytes of output data. */
export const OUTPUT_OPS: ReadonlySet<number> = new Set([Op.READLINK, Op.READ, Op.READDIR, Op.GETXATTR, Op.LISTXATTR]);

/** Operations that carry `data` in the payload. */
const DATA_OPS: ReadonlySet<number> = new Set([Op.WRITE, Op.SETXATTR, Op.SETATTR, Op.GETLK, Op.SETLK]);

function checkString(value: WireString, kind: StringKind, op: string): Buffer {
  switch (kind) {
    case 'name': return validateName(value, op);
    case 'path': return validatePath(value, op);
    case 'target': return validateTarget(value, op);
  }
}

function u64(value: U64 | undefined, field: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${field} must be a u64, got ${value}`);
    return BigInt(value);
  }
  if (value < 0n || value > U64_MAX) throw new RangeError(`${field} must be a u64, got ${value}`);
  return value;
}

/**
 * Writes a u64 field of a zero-filled slot. Numbers (the common case) go in as two u32 halves: a BigInt per field
 * is a measurable share of a request's cost on the ring's hot path.
 */
function putU64(slot: Buffer, value: U64 | undefined, at: number, field: string): void {
  if (value === undefined || value === 0) return;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) {
    slot.writeUInt32LE(value >>> 0, at);
    slot.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
    return;
  }
  slot.writeBigUInt64LE(u64(value, field), at);
}

const EMPTY = Buffer.alloc(0);

function u32(value: number | undefined, field: string): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new RangeError(`${field} must be a u32, got ${value}`);
  }
  return value;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Build a request slot (id 0, nsegs 0) and its external payload, validating every string first. */
export function encodeRequest(spec: RequestSpec): EncodedRequest {
  const name = opName(spec.op);
  const kinds = STRINGS[spec.op] ?? [];
  const given = [spec.name1, spec.name2];
  const strings: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    const value = given[i];
    const kind = kinds[i];
    if (kind === undefined) {
      if (value !== undefined) throw new RangeError(`${name} carries no name${i + 1}`);
      strings.push(EMPTY);
    } else {
      // A missing required string is checked as an empty one so it gets the errno an empty one would.
      strings.push(checkString(value ?? '', kind, name));
    }
  }
  const [name1, name2] = strings as [Buffer, Buffer];
  if (spec.data !== undefined && !DATA_OPS.has(spec.op)) throw new RangeError(`${name} carries no data`);
  const data = spec.data === undefined ? EMPTY : asBuffer(spec.data);
  const payloadLen = name1.length + name2.length + data.length;
  if (payloadLen > MAX_DATA) throw new LimitError('MAX_DATA', `${name} payload of ${payloadLen} bytes exceeds ${MAX_DATA}`);
  const len = u32(spec.len, 'len');
  if (len > MAX_DATA) throw new LimitError('MAX_DATA', `${name} output of ${len} bytes exceeds ${MAX_DATA}`);

  // From Node's shared pool rather than an ArrayBuffer of its own: far cheaper to allocate and to collect.
  const slot = Buffer.allocUnsafe(SLOT_SIZE).fill(0);
  slot.writeUInt8(spec.op, ReqOff.OP);
  slot.writeUInt32LE(payloadLen, ReqOff.PAYLOAD_LEN);
  putU64(slot, spec.node, ReqOff.NODE, 'node');
  putU64(slot, spec.fh, ReqOff.FH, 'fh');
  putU64(slot, spec.offset, ReqOff.OFFSET, 'offset');
  putU64(slot, spec.arg64, ReqOff.ARG64, 'arg64');
  slot.writeUInt32LE(len, ReqOff.LEN);
  slot.writeUInt32LE(u32(spec.arg32a, 'arg32a'), ReqOff.ARG32A);
  slot.writeUInt32LE(u32(spec.arg32b, 'arg32b'), ReqOff.ARG32B);
  slot.writeUInt16LE(name1.length, ReqOff.NAME1_LEN);
  slot.writeUInt16LE(name2.length, ReqOff.NAME2_LEN);

  const outLen = OUTPUT_OPS.has(spec.op) ? len : 0;
  if (payloadLen <= INLINE_CAPACITY) {
    let at = ReqOff.INLINE;
    at += name1.copy(slot, at);
    at += name2.copy(slot, at);
    data.copy(slot, at);
    return { slot, payload: null, outLen };
  }
  slot.writeUInt16LE(RequestFlag.PAYLOAD_EXT, ReqOff.FLAGS);
  // A bare write payload is passed through without a copy; the caller must not reuse it until the call ends.
  const payload = name1.length + name2.length === 0 ? data : Buffer.concat([name1, name2, data], payloadLen);
  return { slot, payload, outLen };
}

function i64(value: number, field: string): bigint {
  const big = BigInt(value);
  if (!Number.isInteger(value) || big < I64_MIN || big > I64_MAX) throw new RangeError(`${field} must be an i64`);
  return big;
}

/** Write an attr record at `at` (88 bytes). */
export function encodeAttr(target: Buffer, at: number, a: Attr): void {
  target.writeBigUInt64LE(u64(a.ino, 'ino'), at + AttrOff.INO);
  target.writeBigUInt64LE(u64(a.size, 'size'), at + AttrOff.SIZE);
  target.writeBigUInt64LE(u64(a.blocks, 'blocks'), at + AttrOff.BLOCKS);
  target.writeBigInt64LE(i64(a.atime.sec, 'atime'), at + AttrOff.ATIME_S);
  target.writeBigInt64LE(i64(a.mtime.sec, 'mtime'), at + AttrOff.MTIME_S);
  target.writeBigInt64LE(i64(a.ctime.sec, 'ctime'), at + AttrOff.CTIME_S);
  target.writeUInt32LE(u32(a.atime.nsec, 'atime.nsec'), at + AttrOff.ATIME_NS);
  target.writeUInt32LE(u32(a.mtime.nsec, 'mtime.nsec'), at + AttrOff.MTIME_NS);
  target.writeUInt32LE(u32(a.ctime.nsec, 'ctime.nsec'), at + AttrOff.CTIME_NS);
  target.writeUInt32LE(u32(a.mode, 'mode'), at + AttrOff.MODE);
  target.writeUInt32LE(u32(a.nlink, 'nlink'), at + AttrOff.NLINK);
  target.writeUInt32LE(u32(a.uid, 'uid'), at + AttrOff.UID);
  target.writeUInt32LE(u32(a.gid, 'gid'), at + AttrOff.GID);
  target.writeUInt32LE(u32(a.rdev, 'rdev'), at + AttrOff.RDEV);
  target.writeUInt32LE(u32(a.blksize, 'blksize'), at + AttrOff.BLKSIZE);
}

/** Write a statfs record at `at` (52 bytes). */
export function encodeStatfs(target: Buffer, at: number, s: StatfsInfo): void {
  target.writeBigUInt64LE(u64(s.blocks, 'blocks'), at + StatfsOff.BLOCKS);
  target.writeBigUInt64LE(u64(s.bfree, 'bfree'), at + StatfsOff.BFREE);
  target.writeBigUInt64LE(u64(s.bavail, 'bavail'), at + StatfsOff.BAVAIL);
  target.writeBigUInt64LE(u64(s.files, 'files'), at + StatfsOff.FILES);
  target.writeBigUInt64LE(u64(s.ffree, 'ffree'), at + StatfsOff.FFREE);
  target.writeUInt32LE(u32(s.bsize, 'bsize'), at + StatfsOff.BSIZE);
  target.writeUInt32LE(u32(s.namelen, 'namelen'), at + StatfsOff.NAMELEN);
  target.writeUInt32LE(u32(s.frsize, 'frsize'), at + StatfsOff.FRSIZE);
}

/** What a response carries; unset fields are 0. attr and statfs share bytes: give at most one. */
export interface ResponseSpec {
  id: U64;
  status?: number;
  len?: number;
  flags?: number;
  fh?: U64;
  node?: U64;
  generation?: U64;
  attr?: Attr;
  statfs?: StatfsInfo;
}

/** Build a response slot (for tests and TypeScript peers). */
export function encodeResponse(spec: ResponseSpec): Buffer {
  if (spec.attr !== undefined && spec.statfs !== undefined) throw new RangeError('attr and statfs overlap');
  const status = spec.status ?? 0;
  if (!Number.isInteger(status) || status > 0 || status < -4095) throw new RangeError(`bad status ${status}`);
  const slot = Buffer.alloc(SLOT_SIZE);
  slot.writeBigUInt64LE(u64(spec.id, 'id'), RspOff.ID);
  slot.writeInt32LE(status, RspOff.STATUS);
  slot.writeUInt32LE(u32(spec.len, 'len'), RspOff.LEN);
  slot.writeUInt32LE(u32(spec.flags, 'flags'), RspOff.FLAGS);
  slot.writeBigUInt64LE(u64(spec.fh, 'fh'), RspOff.FH);
  slot.writeBigUInt64LE(u64(spec.node, 'node'), RspOff.NODE);
  slot.writeBigUInt64LE(u64(spec.generation, 'generation'), RspOff.GENERATION);
  if (spec.attr !== undefined) encodeAttr(slot, RspOff.ATTR, spec.attr);
  if (spec.statfs !== undefined) encodeStatfs(slot, RspOff.STATFS, spec.statfs);
  return slot;
}

/**
 * Pack records into a readdir output buffer, stopping before the first that does not fit in `capacity`.
 * Returns the bytes and how many records went in (the server's contract: whole records only).
 */
export function encodeDirents(records: readonly DirentRecord[], capacity: number): { buf: Buffer; count: number } {
  let size = 0;
  let count = 0;
  for (const r of records) {
    const next = size + direntSize(r.name.length);
    if (next > capacity) break;
    size = next;
    count++;
  }
  const buf = Buffer.alloc(size);
  let at = 0;
  for (const r of records.slice(0, count)) {
    if (r.name.length === 0 || r.name.length > MAX_NAME) throw new RangeError('dirent name must be 1..255 bytes');
    buf.writeBigUInt64LE(u64(r.ino, 'ino'), at + DirentOff.INO);
    buf.writeBigUInt64LE(u64(r.next, 'next'), at + DirentOff.NEXT);
    buf.writeUInt16LE(r.name.length, at + DirentOff.NAMELEN);
    buf.writeUInt8(r.type, at + DirentOff.TYPE);
    r.name.copy(buf, at + DIRENT_HEADER_SIZE);
    at += direntSize(r.name.length);
  }
  return { buf, count };
}

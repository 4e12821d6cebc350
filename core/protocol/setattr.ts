// SETATTR's fixed 48-byte payload (docs/protocol.md) and its valid mask. A field is applied only when its bit is
// set, so the encoder derives the mask from which fields are present and never sends a meaningless value.
import { ProtocolError } from '../errors.ts';
import { SETATTR_PAYLOAD_SIZE, SetattrOff, U32_MAX } from './layout.ts';
import { SetattrValid } from './opcodes.ts';
import type { Timespec } from './types.ts';

/** What to change; absent fields stay as they are. 'now' asks the server for its own clock. */
export interface SetattrSpec {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Timespec | 'now';
  mtime?: Timespec | 'now';
}

/** The decoded payload and mask, as the server sees it. */
export interface SetattrValues {
  valid: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
}

function checkU32(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new RangeError(`${field} must be a u32`);
  return value;
}

function checkTime(t: Timespec, field: string): Timespec {
  if (!Number.isSafeInteger(t.sec)) throw new RangeError(`${field}.sec must be a safe integer`);
  if (!Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec > 999_999_999) {
    throw new RangeError(`${field}.nsec must be 0..999999999`);
  }
  return t;
}

/** Encode the payload; returns the valid mask for arg32a and the size for arg64. */
export function encodeSetattr(spec: SetattrSpec): { valid: number; payload: Buffer; size: number } {
  const buf = Buffer.alloc(SETATTR_PAYLOAD_SIZE);
  let valid = 0;
  if (spec.mode !== undefined) {
    valid |= SetattrValid.MODE;
    buf.writeUInt32LE(checkU32(spec.mode, 'mode'), SetattrOff.MODE);
  }
  if (spec.uid !== undefined) {
    valid |= SetattrValid.UID;
    buf.writeUInt32LE(checkU32(spec.uid, 'uid'), SetattrOff.UID);
  }
  if (spec.gid !== undefined) {
    valid |= SetattrValid.GID;
    buf.writeUInt32LE(checkU32(spec.gid, 'gid'), SetattrOff.GID);
  }
  let size = 0;
  if (spec.size !== undefined) {
    if (!Number.isSafeInteger(spec.size) || spec.size < 0) throw new RangeError('size must be a safe integer >= 0');
    valid |= SetattrValid.SIZE;
    size = spec.size;
    buf.writeBigUInt64LE(BigInt(size), SetattrOff.SIZE);
  }
  if (spec.atime === 'now') valid |= SetattrValid.ATIME | SetattrValid.ATIME_NOW;
  else if (spec.atime !== undefined) {
    const t = checkTime(spec.atime, 'atime');
    valid |= SetattrValid.ATIME;
    buf.writeBigInt64LE(BigInt(t.sec), SetattrOff.ATIME_S);
    buf.writeUInt32LE(t.nsec, SetattrOff.ATIME_NS);
  }
  if (spec.mtime === 'now') valid |= SetattrValid.MTIME | SetattrValid.MTIME_NOW;
  else if (spec.mtime !== undefined) {
    const t = checkTime(spec.mtime, 'mtime');
    valid |= SetattrValid.MTIME;
    buf.writeBigInt64LE(BigInt(t.sec), SetattrOff.MTIME_S);
    buf.writeUInt32LE(t.nsec, SetattrOff.MTIME_NS);
  }
  return { valid, payload: buf, size };
}

function safe(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new ProtocolError(`setattr ${field} ${value} is out of range`);
  }
  return Number(value);
}

function time(buf: Buffer, secAt: number, nsecAt: number, field: string): Timespec {
  const nsec = buf.readUInt32LE(nsecAt);
  if (nsec > 999_999_999) throw new ProtocolError(`setattr ${field} nsec ${nsec} is out of range`);
  return { sec: safe(buf.readBigInt64LE(secAt), field), nsec };
}

/** Decode a payload (for tests and TypeScript peers); throws ProtocolError on a wrong length or range. */
export function decodeSetattr(payload: Uint8Array, valid: number): SetattrValues {
  if (payload.byteLength !== SETATTR_PAYLOAD_SIZE) {
    throw new ProtocolError(`setattr payload is ${payload.byteLength} bytes, not ${SETATTR_PAYLOAD_SIZE}`);
  }
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    valid,
    mode: buf.readUInt32LE(SetattrOff.MODE),
    uid: buf.readUInt32LE(SetattrOff.UID),
    gid: buf.readUInt32LE(SetattrOff.GID),
    size: safe(buf.readBigUInt64LE(SetattrOff.SIZE), 'size'),
    atime: time(buf, SetattrOff.ATIME_S, SetattrOff.ATIME_NS, 'atime'),
    mtime: time(buf, SetattrOff.MTIME_S, SetattrOff.MTIME_NS, 'mtime'),
  };
}

// The FileLock record of GETLK and SETLK (docs/protocol.md, "File locks"): FUSE's fuse_file_lock, 24 bytes. It is
// the payload of both requests and, at offset 48 of the response slot, GETLK's answer.
import { ProtocolError } from '../errors.ts';
import { LOCK_PAYLOAD_SIZE, LockOff, OFFSET_MAX, RspOff, SLOT_SIZE, U32_MAX, U64_MAX } from './layout.ts';
import { LockType, type LockTypeCode } from './opcodes.ts';
import type { U64 } from './types.ts';

/** A lock to describe. The range defaults to the whole file; `end` is inclusive, OFFSET_MAX (or more) = to EOF. */
export interface FileLockSpec {
  start?: U64;
  end?: U64;
  type: LockTypeCode;
  /** The locking process as the guest numbers it; dom0 hands it back only to the same guest. */
  pid?: number;
}

/** A decoded FileLock. Offsets are bigint: a lock to the end of the file ends at OFFSET_MAX, past 2^53. */
export interface FileLock {
  start: bigint;
  end: bigint;
  type: LockTypeCode;
  pid: number;
}

const TYPES: ReadonlySet<number> = new Set(Object.values(LockType));

function offset(value: U64 | undefined, fallback: bigint, field: string): bigint {
  const fits = typeof value === 'number' ? Number.isSafeInteger(value) && value >= 0 : (value ?? 0n) >= 0n && (value ?? 0n) <= U64_MAX;
  if (!fits) throw new RangeError(`${field} must be a u64, got ${value}`);
  return value === undefined ? fallback : BigInt(value);
}

/** The 24-byte payload of a GETLK or SETLK. Caller bugs (a value out of range) throw RangeError. */
export function encodeLock(spec: FileLockSpec): Buffer {
  const pid = spec.pid ?? 0;
  if (!TYPES.has(spec.type)) throw new RangeError(`lock type must be a LockType, got ${spec.type}`);
  if (!Number.isInteger(pid) || pid < 0 || pid > U32_MAX) throw new RangeError(`pid must be a u32, got ${pid}`);
  const buf = Buffer.alloc(LOCK_PAYLOAD_SIZE);
  buf.writeBigUInt64LE(offset(spec.start, 0n, 'start'), LockOff.START);
  buf.writeBigUInt64LE(offset(spec.end, OFFSET_MAX, 'end'), LockOff.END);
  buf.writeUInt32LE(spec.type, LockOff.TYPE);
  buf.writeUInt32LE(pid, LockOff.PID);
  return buf;
}

/** Decodes a FileLock at `at` of `buf`; an unknown type, or a lock whose end precedes its start, is a ProtocolError. */
export function decodeLock(buf: Uint8Array, at = 0): FileLock {
  if (!Number.isInteger(at) || at < 0 || at + LOCK_PAYLOAD_SIZE > buf.byteLength) {
    throw new ProtocolError('lock record runs past its buffer');
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const type = b.readUInt32LE(at + LockOff.TYPE);
  if (!TYPES.has(type)) throw new ProtocolError(`lock type ${type} is not F_RDLCK, F_WRLCK or F_UNLCK`);
  const start = b.readBigUInt64LE(at + LockOff.START);
  const end = b.readBigUInt64LE(at + LockOff.END);
  if (type !== LockType.UNLCK && end < start) throw new ProtocolError(`lock ends (${end}) before it starts (${start})`);
  return { start, end, type: type as LockTypeCode, pid: b.readUInt32LE(at + LockOff.PID) };
}

/** GETLK's answer: the conflicting lock, or type UNLCK when nothing conflicts. */
export function decodeLockReply(slot: Uint8Array): FileLock {
  if (slot.byteLength !== SLOT_SIZE) throw new ProtocolError(`response slot is ${slot.byteLength} bytes, not ${SLOT_SIZE}`);
  return decodeLock(slot, RspOff.LOCK);
}

// Argument checks and conversions shared by GuestFs and GuestFileHandle. Caller bugs (a buffer range that does
// not fit) are RangeErrors, as in Node; values the kernel would refuse are ErrnoErrors with its errno.
import { ErrnoError, errno } from '../errors.ts';
import type { Timespec } from '../protocol/types.ts';
import type { CallContext } from './rpc.ts';

/** A time as fs/promises takes it: seconds since the epoch (fractions allowed), or a Date. */
export type TimeLike = number | Date;

/** Seconds-or-Date to the wire's {sec, nsec}, rounding down to whole nanoseconds. */
export function toTimespec(time: TimeLike, name: string): Timespec {
  const ms = time instanceof Date ? time.getTime() : time * 1000;
  if (!Number.isFinite(ms)) throw new RangeError(`${name} must be a finite time`);
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6)));
  return { sec, nsec };
}

/** offset and length must lie within the buffer (Node's ERR_OUT_OF_RANGE). */
export function checkRange(buffer: Uint8Array, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > buffer.byteLength) {
    throw new RangeError(`offset ${offset} is outside the ${buffer.byteLength}-byte buffer`);
  }
  if (!Number.isSafeInteger(length) || length < 0 || offset + length > buffer.byteLength) {
    throw new RangeError(`length ${length} at offset ${offset} runs past the ${buffer.byteLength}-byte buffer`);
  }
}

/** A file position or size: a non-negative safe integer, else EINVAL as pread(2) says. */
export function checkPosition(value: number, op: string, ctx: CallContext): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ErrnoError(errno('EINVAL'), op, ctx.path, { syscall: ctx.syscall });
  }
  return value;
}

/** A buffer view over any Uint8Array without a copy. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

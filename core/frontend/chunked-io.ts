// Reads and writes larger than one request carries (MAX_DATA, 128 KiB: every segment full) are split into
// MAX_DATA pieces issued concurrently, up to a window, so a 1 MiB read is 8 requests in flight at once rather
// than 8 round trips in a row.
import { MAX_DATA } from '../protocol/layout.ts';
import { Op } from '../protocol/opcodes.ts';
import type { CallContext, Rpc } from './rpc.ts';

/** Requests of one read or write in flight at once, by default. */
export const DEFAULT_IO_WINDOW = 8;

/**
 * Run fn(0..count-1) with at most `window` running at once. The first failure stops new starts; it is thrown
 * once the running ones have settled, so nothing is left writing into a caller's buffer after we return.
 */
export async function windowed(count: number, window: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < count) {
      const index = next++;
      try {
        await fn(index);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  if (failure !== null) throw (failure as { err: unknown }).err;
}

// Bytes done by pieces that each completed in full, plus the first short one: what a caller may count on.
function contiguous(done: readonly number[], sizeOf: (i: number) => number): number {
  let total = 0;
  for (let i = 0; i < done.length; i++) {
    const n = done[i] ?? 0;
    total += n;
    if (n < sizeOf(i)) break;
  }
  return total;
}

function pieceSize(length: number, i: number): number {
  return Math.min(MAX_DATA, length - i * MAX_DATA);
}

/**
 * Read `length` bytes at `position` of handle `fh` into target[offset..]. Returns the bytes read up to the first
 * short piece (end of file). A reply with more data than asked for cannot arrive: the transport refuses it.
 */
export async function readChunks(
  rpc: Rpc, fh: bigint, target: Buffer, offset: number, length: number, position: number, window: number,
  ctx: CallContext,
): Promise<number> {
  const count = Math.ceil(length / MAX_DATA);
  const done = new Array<number>(count).fill(0);
  await windowed(count, window, async (i) => {
    const len = pieceSize(length, i);
    const reply = await rpc.call({ op: Op.READ, fh, offset: position + i * MAX_DATA, len }, ctx);
    const data = reply.data ?? Buffer.alloc(0);
    data.copy(target, offset + i * MAX_DATA, 0, Math.min(data.length, len));
    done[i] = Math.min(data.length, len);
  });
  return contiguous(done, (i) => pieceSize(length, i));
}

/**
 * Write source[offset..offset+length] at `position` of handle `fh`. With `append` the pieces go one after
 * another: the server appends each where the file ends, so concurrent pieces would land out of order.
 * Returns the bytes written up to the first short piece.
 */
export async function writeChunks(
  rpc: Rpc, fh: bigint, source: Uint8Array, offset: number, length: number, position: number, window: number,
  append: boolean, ctx: CallContext,
): Promise<number> {
  const count = Math.ceil(length / MAX_DATA);
  const done = new Array<number>(count).fill(0);
  let stop = false;
  await windowed(count, append ? 1 : window, async (i) => {
    if (stop) return;
    const len = pieceSize(length, i);
    const start = offset + i * MAX_DATA;
    const data = source.subarray(start, start + len);
    const reply = await rpc.call({ op: Op.WRITE, fh, offset: position + i * MAX_DATA, data }, ctx);
    // A server that claims more than it was sent is counted as having written what it was sent.
    done[i] = Math.min(reply.header.len, len);
    // Appending after a short write would leave a gap between the pieces.
    if (append && done[i] < len) stop = true;
  });
  return contiguous(done, (i) => pieceSize(length, i));
}

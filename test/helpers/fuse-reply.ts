// The one write a hand-written FUSE server (fuse-double.ts, fuse-forwarder.ts) answers a kernel request with.
import fs from 'node:fs';

/**
 * Answers request `unique` on the FUSE connection `fd`: `error` 0 with `body`, or a positive errno alone. A failed
 * write is dropped: the request was interrupted, or the connection is going away.
 */
export function fuseReply(fd: number, unique: bigint, error: number, body: Buffer = Buffer.alloc(0)): void {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + (error === 0 ? body.length : 0), 0);
  h.writeInt32LE(-error, 4);
  h.writeBigUInt64LE(unique, 8);
  try {
    fs.writeSync(fd, error === 0 ? Buffer.concat([h, body]) : h);
  } catch {
    // nobody is waiting for this answer any more
  }
}

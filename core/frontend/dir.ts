// Directory listing for GuestFs: OPENDIR, then READDIR pages (cookies from each record's `next`) until the
// server says end of directory, then RELEASE. Records are decoded with every length checked (decodeDirents).
import { decodeDirents } from '../protocol/decode.ts';
import { DirentType, Op, READDIR_EOF } from '../protocol/opcodes.ts';
import type { CallContext, Rpc } from './rpc.ts';

/** Default READDIR buffer: 64 KiB holds about 1,500 typical entries. */
export const DEFAULT_READDIR_BUFFER = 64 * 1024;

/** One directory entry. `type` is a DirentType (DT_*) value; `ino` is Number(ino), exact below 2^53. */
export class GuestDirent {
  readonly name: string;
  readonly type: number;
  readonly ino: number;

  constructor(name: string, type: number, ino: number) {
    this.name = name;
    this.type = type;
    this.ino = ino;
  }

  isFile(): boolean {
    return this.type === DirentType.REG;
  }

  isDirectory(): boolean {
    return this.type === DirentType.DIR;
  }

  isSymbolicLink(): boolean {
    return this.type === DirentType.LNK;
  }
}

/** OPENDIR a node; the caller owns the returned handle (listDirectory releases it). */
export async function openDirectory(rpc: Rpc, node: bigint, ctx: CallContext): Promise<bigint> {
  return (await rpc.call({ op: Op.OPENDIR, node }, ctx)).header.fh;
}

/**
 * Yield the entries of an open directory handle, '.' and '..' left out, and RELEASE it when done — also when
 * the consumer stops early or a page fails.
 */
export async function* listDirectory(
  rpc: Rpc, fh: bigint, bufferSize: number, ctx: CallContext,
): AsyncGenerator<GuestDirent, void, undefined> {
  try {
    let cookie = 0n;
    for (;;) {
      const reply = await rpc.call({ op: Op.READDIR, fh, offset: cookie, len: bufferSize }, ctx);
      const records = rpc.decode(() => decodeDirents(reply.data ?? Buffer.alloc(0), reply.header.len));
      for (const record of records) {
        cookie = record.next;
        const name = record.name.toString('utf8');
        if (name === '.' || name === '..') continue;
        yield new GuestDirent(name, record.type, Number(record.ino));
      }
      // An empty page without the end flag would otherwise ask for the same page forever.
      if ((reply.header.flags & READDIR_EOF) !== 0 || records.length === 0) return;
    }
  } finally {
    // A RELEASE failure is swallowed: it must not mask the error (or the early stop) that ended the listing.
    await rpc.call({ op: Op.RELEASE, fh }, ctx).catch(() => {});
  }
}

// Opening files for GuestFs and GuestFileHandle: OPEN for existing files, CREATE for O_CREAT, and the rules
// that bridge the server (which never follows a symlink) and open(2) (which does). Also whole-file reads.
import { decodeEntry } from '../protocol/decode.ts';
import { errno } from '../errors.ts';
import { MAX_DATA } from '../protocol/layout.ts';
import { Op, OpenFlag } from '../protocol/opcodes.ts';
import type { Attr } from '../protocol/types.ts';
import { readChunks } from './chunked-io.ts';
import { type Resolver, readlinkNode, splitParent } from './resolver.ts';
import { type CallContext, type Rpc, isErrno } from './rpc.ts';

/** An open server handle and, when the reply carried them, the file's attributes. */
export interface Opened {
  fh: bigint;
  attr: Attr | null;
}

const EEXIST = errno('EEXIST');
const ELOOP = errno('ELOOP');

export class FileOpener {
  readonly #rpc: Rpc;
  readonly #resolver: Resolver;
  readonly #maxHops: number;
  readonly #window: number;

  constructor(rpc: Rpc, resolver: Resolver, maxHops: number, window: number) {
    this.#rpc = rpc;
    this.#resolver = resolver;
    this.#maxHops = maxHops;
    this.#window = window;
  }

  /** OPEN or CREATE by the O_ flags. The caller owns the handle (RELEASE it). */
  async open(path: string, flags: number, mode: number, ctx: CallContext): Promise<Opened> {
    if ((flags & OpenFlag.O_CREAT) !== 0) return this.#create(path, flags, mode, ctx);
    const follow = (flags & OpenFlag.O_NOFOLLOW) === 0;
    return this.#resolver.with(path, follow, ctx, async (lease) => {
      const reply = await this.#rpc.call({ op: Op.OPEN, node: lease.node, arg32a: flags }, ctx);
      return { fh: reply.header.fh, attr: lease.attr };
    });
  }

  /**
   * The whole file: its known size in one windowed batch. Like Node's readFile, a file whose size reads as 0
   * (empty, or procfs-like) is read until a short read instead.
   */
  async readAll(fh: bigint, size: number, ctx: CallContext): Promise<Buffer> {
    if (size > 0) {
      const buf = Buffer.allocUnsafe(size);
      const n = await readChunks(this.#rpc, fh, buf, 0, size, 0, this.#window, ctx);
      return buf.subarray(0, n);
    }
    const parts: Buffer[] = [];
    for (let position = 0; ;) {
      const buf = Buffer.allocUnsafe(MAX_DATA);
      const n = await readChunks(this.#rpc, fh, buf, 0, MAX_DATA, position, 1, ctx);
      parts.push(buf.subarray(0, n));
      position += n;
      if (n < MAX_DATA) return Buffer.concat(parts);
    }
  }

  /** RELEASE without making the caller wait: nothing it returns depends on it. */
  releaseLater(fh: bigint, ctx: CallContext): void {
    this.#rpc.call({ op: Op.RELEASE, fh }, ctx).catch(() => {});
  }

  // CREATE never follows a symlink at the final name: on ELOOP the name is a symlink, so create (or open) what it
  // points to, as open(2) with O_CREAT does. On EEXIST without O_EXCL the file is there: open it instead.
  async #create(path: string, flags: number, mode: number, ctx: CallContext): Promise<Opened> {
    const exclusive = (flags & OpenFlag.O_EXCL) !== 0;
    let current = path;
    for (let hops = 0; ; hops++) {
      const { parent, name } = splitParent(current);
      try {
        return await this.#resolver.with(parent, true, ctx, async (dir) => {
          const spec = { op: Op.CREATE, node: dir.node, name1: name, arg32a: flags, arg32b: mode } as const;
          const reply = await this.#rpc.call(spec, ctx);
          const entry = this.#rpc.decode(() => decodeEntry(reply.slot));
          this.#rpc.forget(entry.node);
          return { fh: reply.header.fh, attr: entry.attr };
        });
      } catch (err) {
        if (isErrno(err, EEXIST) && !exclusive) return this.open(current, flags & ~OpenFlag.O_CREAT, mode, ctx);
        if (!isErrno(err, ELOOP) || exclusive || (flags & OpenFlag.O_NOFOLLOW) !== 0 || hops >= this.#maxHops) {
          throw err;
        }
        const target = await this.#resolver
          .with(current, false, ctx, (lease) => readlinkNode(this.#rpc, lease.node, ctx))
          .catch(() => {
            throw err; // not a symlink after all: the ELOOP stands
          });
        current = target.startsWith('/') ? target : `${parent}/${target}`;
      }
    }
  }
}

// Path resolution for GuestFs. The server resolves WALK paths with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: it
// never follows a symlink, and '..' may not leave the export. So symlinks are followed here, in the guest,
// with the export root as '/' (a chroot: absolute targets and '..' at the top stay inside the export).
//
// The common path costs one WALK. Only when the server refuses the whole path (ELOOP: a symlink in the middle;
// EXDEV: '..' past the root) does the resolver go component by component, expanding symlinks as it meets them.
import { ErrnoError, errno } from '../errors.ts';
import type { Attr } from '../protocol/types.ts';
import { splitPath } from '../protocol/names.ts';
import { decodeAttr } from '../protocol/decode.ts';
import { Op, WALK_PEEK } from '../protocol/opcodes.ts';
import { type CallContext, type Rpc, isErrno } from './rpc.ts';
import { isSymlinkMode } from './stats.ts';

/** Linux's limit on symlinks followed in one resolution (MAXSYMLINKS). */
export const MAX_SYMLINK_HOPS = 40;

/**
 * A node the client holds. `owned` nodes carry one lookup and must be released (FORGET); the export root is
 * never owned. `attr` is null for the root, whose attributes no WALK returned.
 */
export interface Lease {
  node: bigint;
  attr: Attr | null;
  owned: boolean;
}

const ELOOP = errno('ELOOP');
const EXDEV = errno('EXDEV');

export class Resolver {
  readonly #rpc: Rpc;
  readonly #root: bigint;
  readonly #maxHops: number;

  constructor(rpc: Rpc, root: bigint, maxHops = MAX_SYMLINK_HOPS) {
    this.#rpc = rpc;
    this.#root = root;
    this.#maxHops = maxHops;
  }

  get root(): Lease {
    return { node: this.#root, attr: null, owned: false };
  }

  release(lease: Lease): void {
    if (lease.owned) this.#rpc.forget(lease.node);
  }

  /** Run `fn` on the node at `path` and release it afterwards, whatever `fn` does. */
  async with<T>(path: string, follow: boolean, ctx: CallContext, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = await this.resolve(path, follow, ctx);
    try {
      return await fn(lease);
    } finally {
      this.release(lease);
    }
  }

  /** The node at `path`; with `follow`, a final symlink is followed too (intermediate ones always are). */
  async resolve(path: string, follow: boolean, ctx: CallContext): Promise<Lease> {
    let components = splitPath(path);
    for (let hops = 0; ; hops++) {
      let lease: Lease;
      try {
        lease = await this.#walk(components, ctx);
      } catch (err) {
        if (!isErrno(err, ELOOP) && !isErrno(err, EXDEV)) throw err;
        return this.#slow(components, follow, hops, ctx);
      }
      if (!follow || lease.attr === null || !isSymlinkMode(lease.attr.mode)) return lease;
      if (hops >= this.#maxHops) {
        this.release(lease);
        throw this.#loop(ctx);
      }
      const target = await this.#readlink(lease, ctx);
      components = [...(target.startsWith('/') ? [] : components.slice(0, -1)), ...splitPath(target)];
    }
  }

  /**
   * The attributes at `path` in one WALK_PEEK round trip, keeping no node; null when the full resolve() is needed
   * instead (the root, a symlink to follow, or a path the server will not walk in one go).
   */
  async peekAttr(path: string, follow: boolean, ctx: CallContext): Promise<Attr | null> {
    const components = splitPath(path);
    if (components.length === 0) return null;
    try {
      const reply = await this.#rpc.call(
        { op: Op.WALK, node: this.#root, name1: components.join('/'), arg32a: WALK_PEEK }, ctx);
      const attr = this.#rpc.decode(() => decodeAttr(reply.slot));
      return follow && isSymlinkMode(attr.mode) ? null : attr;
    } catch (err) {
      if (isErrno(err, ELOOP) || isErrno(err, EXDEV)) return null;
      throw err;
    }
  }

  /** READLINK of a held node, then release it. */
  async #readlink(lease: Lease, ctx: CallContext): Promise<string> {
    try {
      return await readlinkNode(this.#rpc, lease.node, ctx);
    } finally {
      this.release(lease);
    }
  }

  // One WALK from the root; the root itself needs none.
  async #walk(components: readonly string[], ctx: CallContext): Promise<Lease> {
    if (components.length === 0) return this.root;
    const entry = await this.#rpc.entry({ op: Op.WALK, node: this.#root, name1: components.join('/') }, ctx);
    return { node: entry.node, attr: entry.attr, owned: true };
  }

  // Component by component: `real` holds directories known to be real (no symlinks), so '..' is a pop and a
  // symlink's target is spliced in front of what is left.
  async #slow(components: readonly string[], follow: boolean, hops: number, ctx: CallContext): Promise<Lease> {
    const real: string[] = [];
    const todo = [...components].reverse(); // a stack: the next component is last
    for (;;) {
      const name = todo.pop();
      if (name === undefined) return this.#walk(real, ctx);
      if (name === '..') {
        real.pop();
        continue;
      }
      const lease = await this.#walk([...real, name], ctx);
      const last = todo.length === 0;
      if (lease.attr !== null && isSymlinkMode(lease.attr.mode) && (follow || !last)) {
        if (++hops > this.#maxHops) {
          this.release(lease);
          throw this.#loop(ctx);
        }
        const target = await this.#readlink(lease, ctx);
        if (target.startsWith('/')) real.length = 0;
        todo.push(...splitPath(target).reverse());
        continue;
      }
      if (last) return lease;
      this.release(lease);
      real.push(name);
    }
  }

  #loop(ctx: CallContext): ErrnoError {
    return new ErrnoError(ELOOP, 'WALK', ctx.path, { syscall: ctx.syscall });
  }
}

/** READLINK of a node: the target as UTF-8 text. */
export async function readlinkNode(rpc: Rpc, node: bigint, ctx: CallContext): Promise<string> {
  // PATH_MAX bytes always hold a target (the server stores at most 4095).
  const reply = await rpc.call({ op: Op.READLINK, node, len: 4096 }, ctx);
  return (reply.data ?? Buffer.alloc(0)).toString('utf8');
}

/**
 * Split a caller's path into the parent directory's path and the final name, for name operations (mkdir,
 * unlink, …). A final '.' or '..' is kept so the name check refuses it, as rmdir("a/.") is EINVAL.
 */
export function splitParent(path: string): { parent: string; name: string } {
  const trimmed = path.replace(/\/+$/, '');
  const cut = trimmed.lastIndexOf('/');
  return { parent: cut < 0 ? '' : trimmed.slice(0, cut), name: cut < 0 ? trimmed : trimmed.slice(cut + 1) };
}

// The guest client library: an fs/promises-like API over one export of a XenFS connection. Paths are relative
// to the export root ('' and '/' are the root; a leading '/' is stripped). Each call resolves its path with one
// WALK (see resolver.ts), runs its operation on the node, and drops the node with a FORGET it does not wait for.
// Failures are ErrnoErrors naming the call and the path; a peer that breaks the protocol closes the transport.
import { ErrnoError, errno } from '../errors.ts';
import { decodeAttr, decodeStatfs } from '../protocol/decode.ts';
import type { RequestSpec } from '../protocol/encode.ts';
import { MAX_DATA, MAX_NAME, MAX_XATTR_VALUE, direntSize } from '../protocol/layout.ts';
import { AccessMask, Op, OpenFlag, RenameFlag, XattrFlag } from '../protocol/opcodes.ts';
import { type SetattrSpec, encodeSetattr } from '../protocol/setattr.ts';
import type { Attr } from '../protocol/types.ts';
import { type TimeLike, asBuffer, checkPosition, toTimespec } from './args.ts';
import { DEFAULT_IO_WINDOW } from './chunked-io.ts';
import { DEFAULT_READDIR_BUFFER, type GuestDirent, listDirectory, openDirectory } from './dir.ts';
import { GuestFileHandle } from './file-handle.ts';
import { FileOpener } from './file-opener.ts';
import { parseOpenFlags } from './open-flags.ts';
import { type Lease, MAX_SYMLINK_HOPS, Resolver, readlinkNode, splitParent } from './resolver.ts';
import { type CallContext, Rpc, isErrno } from './rpc.ts';
import { StatFs, Stats } from './stats.ts';
import type { Transport } from './transport.ts';
import { readSized } from './xattr.ts';

export interface GuestFsOptions {
  /** Requests of one large read or write in flight at once. Default 8. */
  ioWindow?: number;
  /** READDIR buffer in bytes, 280..131072. Default 65536. */
  readdirBufferSize?: number;
  /** Symlinks followed in one path resolution before ELOOP. Default 40. */
  maxSymlinkHops?: number;
}

export interface ReadFileOptions {
  encoding?: BufferEncoding | null;
}

export interface WriteFileOptions {
  encoding?: BufferEncoding;
  /** Permission bits for a file this call creates. Default 0o666 (the server applies no umask). */
  mode?: number;
  /** Open flags. Default 'w' (appendFile: 'a'). */
  flag?: string | number;
}

export interface MkdirOptions {
  mode?: number;
  recursive?: boolean;
}

export interface RenameOptions {
  /** Fail with EEXIST rather than replace the destination (RENAME_NOREPLACE). */
  noreplace?: boolean;
  /** Swap source and destination atomically (RENAME_EXCHANGE). */
  exchange?: boolean;
}

export interface SetxattrOptions {
  /** Fail with EEXIST if the attribute exists (XATTR_CREATE). */
  create?: boolean;
  /** Fail with ENODATA if it does not (XATTR_REPLACE). */
  replace?: boolean;
}

const ENOENT = errno('ENOENT');
const EEXIST = errno('EEXIST');

function intOption(value: number, key: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${key} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

/**
 * One export, seen from the guest. GuestFs owns the transport: close() closes it. Safe to use from many
 * concurrent async callers; each call is independent on the wire.
 */
export class GuestFs {
  readonly #rpc: Rpc;
  readonly #resolver: Resolver;
  readonly #opener: FileOpener;
  readonly #window: number;
  readonly #readdirBuffer: number;

  constructor(transport: Transport, rootNode: bigint | number, opts: GuestFsOptions = {}) {
    const root = BigInt(rootNode);
    if (root <= 0n) throw new RangeError(`rootNode must be a node id >= 1, got ${rootNode}`);
    this.#window = intOption(opts.ioWindow ?? DEFAULT_IO_WINDOW, 'ioWindow', 1, 1024);
    this.#readdirBuffer = intOption(
      opts.readdirBufferSize ?? DEFAULT_READDIR_BUFFER, 'readdirBufferSize', direntSize(MAX_NAME), MAX_DATA,
    );
    const maxHops = intOption(opts.maxSymlinkHops ?? MAX_SYMLINK_HOPS, 'maxSymlinkHops', 0, 1000);
    this.#rpc = new Rpc(transport);
    this.#resolver = new Resolver(this.#rpc, root, maxHops);
    this.#opener = new FileOpener(this.#rpc, this.#resolver, maxHops, this.#window);
  }

  get transport(): Transport {
    return this.#rpc.transport;
  }

  /** Close the transport; outstanding calls reject with DisconnectedError. Idempotent. */
  close(): Promise<void> {
    return this.#rpc.transport.close();
  }

  // --- attributes ----------------------------------------------------------------------------------------

  /** Attributes of `path`, following symlinks. */
  stat(path: string): Promise<Stats> {
    return this.#statPath(path, true, 'stat');
  }

  /** Attributes of `path` itself, a symlink included. */
  lstat(path: string): Promise<Stats> {
    return this.#statPath(path, false, 'lstat');
  }

  /** One WALK_PEEK round trip in the common case; the full resolver otherwise (Resolver.peekAttr). */
  async #statPath(path: string, follow: boolean, syscall: string): Promise<Stats> {
    const attr = await this.#resolver.peekAttr(path, follow, { syscall, path });
    if (attr) return new Stats(attr);
    return this.#onNode(path, follow, syscall, async (lease, ctx) => new Stats(await this.#attr(lease, ctx)));
  }

  /** Resolves if `path` exists and the caller may access it with `mode` (AccessMask bits); ErrnoError otherwise. */
  access(path: string, mode: number = AccessMask.F_OK): Promise<void> {
    return this.#onNode(path, true, 'access', async (lease, ctx) => {
      // Existence is proven by the WALK; only permission checks need the server.
      if (mode === AccessMask.F_OK) return;
      await this.#rpc.call({ op: Op.ACCESS, node: lease.node, arg32a: mode }, ctx);
    });
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.#setattr(path, 'chmod', { mode });
  }

  /** uid or gid -1 leaves that one unchanged. */
  chown(path: string, uid: number, gid: number): Promise<void> {
    return this.#setattr(path, 'chown', { ...(uid === -1 ? {} : { uid }), ...(gid === -1 ? {} : { gid }) });
  }

  utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    const times = { atime: toTimespec(atime, 'atime'), mtime: toTimespec(mtime, 'mtime') };
    return this.#setattr(path, 'utimes', times);
  }

  truncate(path: string, len = 0): Promise<void> {
    return this.#setattr(path, 'truncate', { size: checkPosition(len, 'SETATTR', { syscall: 'truncate', path }) });
  }

  statfs(path: string): Promise<StatFs> {
    return this.#onNode(path, true, 'statfs', async (lease, ctx) => {
      const reply = await this.#rpc.call({ op: Op.STATFS, node: lease.node }, ctx);
      return new StatFs(this.#rpc.decode(() => decodeStatfs(reply.slot)));
    });
  }

  // --- files ---------------------------------------------------------------------------------------------

  /** Open `path`; the handle must be closed. Flags as fs/promises ('r', 'w+', 'ax', …) or O_ bits. */
  async open(path: string, flags: string | number = 'r', mode = 0o666): Promise<GuestFileHandle> {
    const bits = parseOpenFlags(flags, path);
    const { fh } = await this.#opener.open(path, bits, mode, { syscall: 'open', path });
    return new GuestFileHandle(this.#rpc, fh, path, bits, this.#window);
  }

  readFile(path: string, options?: ReadFileOptions & { encoding?: null }): Promise<Buffer>;
  readFile(
    path: string, options: BufferEncoding | (ReadFileOptions & { encoding: BufferEncoding }),
  ): Promise<string>;
  async readFile(path: string, options?: BufferEncoding | ReadFileOptions): Promise<Buffer | string> {
    const encoding = typeof options === 'string' ? options : options?.encoding ?? null;
    const ctx = { syscall: 'readFile', path };
    const { fh, attr } = await this.#opener.open(path, OpenFlag.O_RDONLY, 0, ctx);
    try {
      const data = await this.#opener.readAll(fh, attr?.size ?? 0, ctx);
      return encoding === null ? data : data.toString(encoding);
    } finally {
      this.#opener.releaseLater(fh, ctx);
    }
  }

  async writeFile(
    path: string, data: string | Uint8Array, options: WriteFileOptions | BufferEncoding = {},
  ): Promise<void> {
    const opts = typeof options === 'string' ? { encoding: options } : options;
    const bytes = typeof data === 'string' ? Buffer.from(data, opts.encoding ?? 'utf8') : asBuffer(data);
    const handle = await this.open(path, opts.flag ?? 'w', opts.mode ?? 0o666);
    const append = (handle.flags & OpenFlag.O_APPEND) !== 0;
    try {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, append ? null : done);
        // A write that makes no progress would loop forever; the kernel reports ENOSPC in that case, so do we.
        if (bytesWritten === 0) throw new ErrnoError(errno('ENOSPC'), 'WRITE', path, { syscall: 'writeFile' });
        done += bytesWritten;
      }
    } finally {
      await handle.close();
    }
  }

  appendFile(
    path: string, data: string | Uint8Array, options: WriteFileOptions | BufferEncoding = {},
  ): Promise<void> {
    const opts = typeof options === 'string' ? { encoding: options } : options;
    return this.writeFile(path, data, { ...opts, flag: opts.flag ?? 'a' });
  }

  // --- directories ---------------------------------------------------------------------------------------

  /** Names in the directory, '.' and '..' left out, in the server's order. */
  async readdir(path: string): Promise<string[]> {
    const names: string[] = [];
    for await (const entry of this.readdirEntries(path)) names.push(entry.name);
    return names;
  }

  /** Entries of the directory, paged on demand; stopping early releases the directory handle. */
  async *readdirEntries(path: string): AsyncGenerator<GuestDirent, void, undefined> {
    const ctx = { syscall: 'readdir', path };
    const fh = await this.#onNode(path, true, 'readdir', (lease) => openDirectory(this.#rpc, lease.node, ctx));
    yield* listDirectory(this.#rpc, fh, this.#readdirBuffer, ctx);
  }

  /** Create a directory. With `recursive`, missing parents too; returns the first directory created, if any. */
  async mkdir(path: string, options: MkdirOptions | number = {}): Promise<string | undefined> {
    const opts = typeof options === 'number' ? { mode: options } : options;
    const mode = opts.mode ?? 0o777;
    if (opts.recursive !== true) {
      await this.#mkdirOne(path, mode);
      return undefined;
    }
    return this.#mkdirRecursive(path, mode);
  }

  rmdir(path: string): Promise<void> {
    return this.#inParent(path, 'rmdir', async (parent, name, ctx) => {
      await this.#rpc.call({ op: Op.RMDIR, node: parent, name1: name }, ctx);
    });
  }

  unlink(path: string): Promise<void> {
    return this.#inParent(path, 'unlink', async (parent, name, ctx) => {
      await this.#rpc.call({ op: Op.UNLINK, node: parent, name1: name }, ctx);
    });
  }

  async rename(from: string, to: string, options: RenameOptions = {}): Promise<void> {
    const flags = (options.noreplace === true ? RenameFlag.NOREPLACE : 0)
      | (options.exchange === true ? RenameFlag.EXCHANGE : 0);
    const src = splitParent(from);
    const dst = splitParent(to);
    const ctx = { syscall: 'rename', path: from, dest: to };
    await this.#resolver.with(src.parent, true, ctx, (a) => this.#resolver.with(dst.parent, true, ctx, async (b) => {
      const spec = { op: Op.RENAME, node: a.node, name1: src.name, arg64: b.node, name2: dst.name, arg32a: flags };
      await this.#rpc.call(spec, ctx);
    }));
  }

  // --- links and special files ---------------------------------------------------------------------------

  /** Create `path` as a symlink to `target` (stored as given; resolved by readers, inside the export). */
  symlink(target: string, path: string): Promise<void> {
    return this.#inParent(path, 'symlink', (parent, name, ctx) =>
      this.#makeEntry({ op: Op.SYMLINK, node: parent, name1: name, name2: target }, ctx));
  }

  readlink(path: string): Promise<string> {
    return this.#onNode(path, false, 'readlink', (lease, ctx) => readlinkNode(this.#rpc, lease.node, ctx));
  }

  /** Hard link: `newPath` names the same file as `existing` (a symlink itself, not followed, as link(2)). */
  link(existing: string, newPath: string): Promise<void> {
    const ctx = { syscall: 'link', path: existing, dest: newPath };
    return this.#resolver.with(existing, false, ctx, (source) => {
      const { parent, name } = splitParent(newPath);
      return this.#resolver.with(parent, true, ctx, (dir) =>
        this.#makeEntry({ op: Op.LINK, node: dir.node, name1: name, arg64: source.node }, ctx));
    });
  }

  /** Create a FIFO, socket or empty regular file (the server refuses devices). `mode` includes the type bits. */
  mknod(path: string, mode: number, rdev = 0): Promise<void> {
    return this.#inParent(path, 'mknod', (parent, name, ctx) =>
      this.#makeEntry({ op: Op.MKNOD, node: parent, name1: name, arg32b: mode, arg32a: rdev }, ctx));
  }

  // --- extended attributes -------------------------------------------------------------------------------

  getxattr(path: string, name: string): Promise<Buffer> {
    return this.#onNode(path, true, 'getxattr', (lease, ctx) =>
      readSized(this.#rpc, { op: Op.GETXATTR, node: lease.node, name1: name }, ctx));
  }

  setxattr(path: string, name: string, value: string | Uint8Array, options: SetxattrOptions = {}): Promise<void> {
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : asBuffer(value);
    const flags = (options.create === true ? XattrFlag.CREATE : 0)
      | (options.replace === true ? XattrFlag.REPLACE : 0);
    return this.#onNode(path, true, 'setxattr', async (lease, ctx) => {
      // Linux's limit; refused here so a value too big for any server never crosses the wire.
      if (data.length > MAX_XATTR_VALUE) {
        throw new ErrnoError(errno('E2BIG'), 'SETXATTR', path, { syscall: 'setxattr' });
      }
      await this.#rpc.call({ op: Op.SETXATTR, node: lease.node, name1: name, data, arg32a: flags }, ctx);
    });
  }

  async listxattr(path: string): Promise<string[]> {
    const list = await this.#onNode(path, true, 'listxattr', (lease, ctx) =>
      readSized(this.#rpc, { op: Op.LISTXATTR, node: lease.node }, ctx));
    return list.toString('utf8').split('\0').filter((n) => n.length > 0);
  }

  removexattr(path: string, name: string): Promise<void> {
    return this.#onNode(path, true, 'removexattr', async (lease, ctx) => {
      await this.#rpc.call({ op: Op.REMOVEXATTR, node: lease.node, name1: name }, ctx);
    });
  }

  // --- internals -----------------------------------------------------------------------------------------

  #onNode<T>(
    path: string, follow: boolean, syscall: string, fn: (lease: Lease, ctx: CallContext) => Promise<T>,
  ): Promise<T> {
    const ctx = { syscall, path };
    return this.#resolver.with(path, follow, ctx, (lease) => fn(lease, ctx));
  }

  // Name operations act on (parent directory, final name); the parent's own symlinks are followed.
  #inParent<T>(
    path: string, syscall: string, fn: (parent: bigint, name: string, ctx: CallContext) => Promise<T>,
  ): Promise<T> {
    const { parent, name } = splitParent(path);
    const ctx = { syscall, path };
    return this.#resolver.with(parent, true, ctx, (lease) => fn(lease.node, name, ctx));
  }

  // An operation whose reply is an entry we do not keep: drop its lookup straight away.
  async #makeEntry(spec: RequestSpec, ctx: CallContext): Promise<void> {
    const entry = await this.#rpc.entry(spec, ctx);
    this.#rpc.forget(entry.node);
  }

  async #attr(lease: Lease, ctx: CallContext): Promise<Attr> {
    if (lease.attr !== null) return lease.attr;
    const reply = await this.#rpc.call({ op: Op.GETATTR, node: lease.node }, ctx);
    return this.#rpc.decode(() => decodeAttr(reply.slot));
  }

  #setattr(path: string, syscall: string, spec: SetattrSpec): Promise<void> {
    const { valid, payload, size } = encodeSetattr(spec);
    return this.#onNode(path, true, syscall, async (lease, ctx) => {
      const setattr = { op: Op.SETATTR, node: lease.node, arg32a: valid, arg64: size, data: payload } as const;
      await this.#rpc.call(setattr, ctx);
    });
  }

  async #mkdirOne(path: string, mode: number): Promise<void> {
    await this.#inParent(path, 'mkdir', (parent, name, ctx) =>
      this.#makeEntry({ op: Op.MKDIR, node: parent, name1: name, arg32a: mode }, ctx));
  }

  async #mkdirRecursive(path: string, mode: number): Promise<string | undefined> {
    try {
      await this.#mkdirOne(path, mode);
      return path;
    } catch (err) {
      if (isErrno(err, EEXIST)) {
        if ((await this.stat(path)).isDirectory()) return undefined;
        throw err;
      }
      const { parent } = splitParent(path);
      if (!isErrno(err, ENOENT) || parent.replace(/\/+/g, '') === '') throw err;
      const first = await this.#mkdirRecursive(parent, mode);
      try {
        await this.#mkdirOne(path, mode);
      } catch (again) {
        // Another caller may have created it between our two attempts.
        if (!isErrno(again, EEXIST) || !(await this.stat(path)).isDirectory()) throw again;
      }
      return first ?? path;
    }
  }
}

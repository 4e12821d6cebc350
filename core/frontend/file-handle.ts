// An open file on the guest side, shaped like fs/promises' FileHandle. It holds a server handle (fh) and no
// node: GuestFs forgets the node once OPEN or CREATE has answered. close() must be called: the server keeps
// the file open (and counts it against the guest's handle limit) until RELEASE.
import { ErrnoError, errno } from '../errors.ts';
import { decodeAttr } from '../protocol/decode.ts';
import { Op, OpenFlag } from '../protocol/opcodes.ts';
import { type SetattrSpec, encodeSetattr } from '../protocol/setattr.ts';
import { type TimeLike, asBuffer, checkPosition, checkRange, toTimespec } from './args.ts';
import { readChunks, writeChunks } from './chunked-io.ts';
import { isWritable } from './open-flags.ts';
import type { CallContext, Rpc } from './rpc.ts';
import { Stats } from './stats.ts';

export interface ReadResult<T extends Uint8Array> {
  bytesRead: number;
  buffer: T;
}

export interface WriteResult<T extends Uint8Array> {
  bytesWritten: number;
  buffer: T;
}

export class GuestFileHandle {
  /** The server's handle id (the wire's fh). Opaque; not a host file descriptor. */
  readonly fd: bigint;
  /** The path it was opened by, for error messages. */
  readonly path: string;
  /** The O_ flags it was opened with. */
  readonly flags: number;
  readonly #rpc: Rpc;
  readonly #window: number;
  #position = 0;
  #closing: Promise<void> | null = null;
  /** The connection the handle was opened on: after dom0 restarts, the id may name another file. */
  readonly #epoch: number | undefined;

  constructor(rpc: Rpc, fd: bigint, path: string, flags: number, window: number) {
    this.#rpc = rpc;
    this.#epoch = rpc.transport.epoch;
    this.fd = fd;
    this.path = path;
    this.flags = flags;
    this.#window = window;
  }

  /** True once close() has been called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Read up to `length` bytes into buffer[offset..] from `position`, or from the handle's own position (which
   * then advances) when position is null. bytesRead < length only at end of file.
   */
  async read<T extends Uint8Array>(
    buffer: T, offset = 0, length = buffer.byteLength - offset, position: number | null = null,
  ): Promise<ReadResult<T>> {
    const ctx = this.#ctx('read');
    checkRange(buffer, offset, length);
    const at = position === null ? this.#position : checkPosition(position, 'READ', ctx);
    if (length === 0) return { bytesRead: 0, buffer };
    const bytesRead = await readChunks(this.#rpc, this.fd, asBuffer(buffer), offset, length, at, this.#window, ctx);
    if (position === null) this.#position = at + bytesRead;
    return { bytesRead, buffer };
  }

  /**
   * Write buffer[offset..offset+length] at `position`, or at the handle's position (which then advances) when
   * position is null. In append mode the server writes at the end of the file whatever the position.
   */
  async write<T extends Uint8Array>(
    buffer: T, offset = 0, length = buffer.byteLength - offset, position: number | null = null,
  ): Promise<WriteResult<T>> {
    const ctx = this.#ctx('write');
    checkRange(buffer, offset, length);
    const at = position === null ? this.#position : checkPosition(position, 'WRITE', ctx);
    if (length === 0) return { bytesWritten: 0, buffer };
    const append = (this.flags & OpenFlag.O_APPEND) !== 0;
    const bytesWritten = await writeChunks(this.#rpc, this.fd, buffer, offset, length, at, this.#window, append, ctx);
    if (position === null) this.#position = at + bytesWritten;
    return { bytesWritten, buffer };
  }

  async stat(): Promise<Stats> {
    const reply = await this.#rpc.call({ op: Op.GETATTR, fh: this.#open('fstat') }, this.#ctx('fstat'));
    return new Stats(this.#rpc.decode(() => decodeAttr(reply.slot)));
  }

  async truncate(len = 0): Promise<void> {
    await this.#setattr({ size: checkPosition(len, 'SETATTR', this.#ctx('ftruncate')) }, 'ftruncate');
  }

  async chmod(mode: number): Promise<void> {
    await this.#setattr({ mode }, 'fchmod');
  }

  async chown(uid: number, gid: number): Promise<void> {
    await this.#setattr({ ...(uid === -1 ? {} : { uid }), ...(gid === -1 ? {} : { gid }) }, 'fchown');
  }

  async utimes(atime: TimeLike, mtime: TimeLike): Promise<void> {
    await this.#setattr({ atime: toTimespec(atime, 'atime'), mtime: toTimespec(mtime, 'mtime') }, 'futimes');
  }

  async sync(): Promise<void> {
    await this.#rpc.call({ op: Op.FSYNC, fh: this.#open('fsync'), arg32a: 0 }, this.#ctx('fsync'));
  }

  async datasync(): Promise<void> {
    await this.#rpc.call({ op: Op.FSYNC, fh: this.#open('fdatasync'), arg32a: 1 }, this.#ctx('fdatasync'));
  }

  /** fallocate(2): `mode` 0 allocates (and extends); other FALLOC_FL_* bits pass through. */
  async allocate(offset: number, len: number, mode = 0): Promise<void> {
    const ctx = this.#ctx('fallocate');
    const spec = {
      op: Op.FALLOCATE, fh: this.#open('fallocate'), offset: checkPosition(offset, 'FALLOCATE', ctx),
      arg64: checkPosition(len, 'FALLOCATE', ctx), arg32a: mode,
    } as const;
    await this.#rpc.call(spec, ctx);
  }

  /**
   * FLUSH (for handles opened for writing: it reports deferred write errors, as close(2) does) and RELEASE.
   * Idempotent: later calls return the first call's promise. The handle is released even if FLUSH fails.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // A handle of a connection that is gone died with it: there is nothing left to release (and its id may now
    // belong to another file).
    if (this.#epoch !== undefined && this.#epoch !== this.#rpc.transport.epoch) return;
    const ctx = { syscall: 'close', path: this.path, epoch: this.#epoch };
    let flushError: unknown = null;
    if (isWritable(this.flags)) {
      await this.#rpc.call({ op: Op.FLUSH, fh: this.fd }, ctx).catch((err: unknown) => {
        flushError = err;
      });
    }
    await this.#rpc.call({ op: Op.RELEASE, fh: this.fd }, ctx);
    if (flushError !== null) throw flushError;
  }

  async #setattr(spec: SetattrSpec, syscall: string): Promise<void> {
    const { valid, payload, size } = encodeSetattr(spec);
    const fh = this.#open(syscall);
    await this.#rpc.call({ op: Op.SETATTR, fh, arg32a: valid, arg64: size, data: payload }, this.#ctx(syscall));
  }

  // The fh, or EBADF once close() has been called: the server may already have given the id to another file.
  #open(syscall: string): bigint {
    if (this.#closing !== null) throw new ErrnoError(errno('EBADF'), '', this.path, { syscall });
    return this.fd;
  }

  #ctx(syscall: string): CallContext {
    this.#open(syscall);
    return { syscall, path: this.path, epoch: this.#epoch };
  }
}

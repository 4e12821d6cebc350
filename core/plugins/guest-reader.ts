// Services read guests' files on dom0, straight from the export directories (not through a guest's mount).
// Those directories are written by untrusted guests, who can plant symlinks and rename directories while a
// service reads, so no path is trusted: every read opens the file without following its final component and
// then asks the kernel where the OPENED descriptor really is (/proc/self/fd/N). Whatever a symlink, `..` or a
// rename racing the open did, a descriptor outside the export is refused before a byte is read.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ErrnoError, LimitError, errno, errnoNumber } from '../errors.ts';
import type { ServerConfig } from '../config/config.ts';
import type {
  GuestDirEntry, GuestFileReader, GuestFileStat, GuestFileType, GuestTarget, ReadOptions,
} from './plugin-api.ts';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
// O_NONBLOCK: opening a FIFO a guest made must not hang the service; the fstat check then refuses it.
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const DIR_FLAGS = O_RDONLY | O_NOFOLLOW | O_DIRECTORY;
// A target's parent: its last component is an intermediate one of the target, followed like the others (and
// the descriptor checked like every other).
const PARENT_FLAGS = O_RDONLY | O_DIRECTORY;

/** Reads of one file before readFile gives up on a file that keeps changing. */
export const READ_TRIES = 3;
const DEFAULT_MAX_ENTRIES = 65536;
const MAX_PATH_BYTES = 4096;
const STREAM_CHUNK = 64 * 1024;
const READ_CHUNK = 1024 * 1024;

interface Resolved {
  /** The export's real path (symlinks in dom0's own config resolved). */
  root: string;
  /** The path to open: root + the target's path. */
  full: string;
  /** `guest:export/path`, for errors. */
  label: string;
}

function typeOf(mode: number): GuestFileType {
  const fmt = mode & fs.constants.S_IFMT;
  if (fmt === fs.constants.S_IFREG) return 'file';
  if (fmt === fs.constants.S_IFDIR) return 'directory';
  if (fmt === fs.constants.S_IFLNK) return 'symlink';
  return 'other';
}

// Nanoseconds since the epoch exceed 2^53: split before converting, or the sub-millisecond part is lost.
const nsToMs = (ns: bigint): number => Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;

function toStat(st: BigIntStats): GuestFileStat {
  const mode = Number(st.mode);
  return {
    type: typeOf(mode), size: Number(st.size), mtimeMs: nsToMs(st.mtimeNs), ctimeMs: nsToMs(st.ctimeNs),
    ino: Number(st.ino), mode,
  };
}

// What says "this file changed": a write moves ctime (and mtime); a truncate or an append moves size.
const sameVersion = (a: BigIntStats, b: BigIntStats): boolean =>
  a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;

export class GuestReader implements GuestFileReader {
  /** guest → export name → export directory, as configured. */
  readonly #exports = new Map<string, Map<string, string>>();

  constructor(config: Pick<ServerConfig, 'guests'>) {
    for (const g of config.guests) this.#exports.set(g.name, new Map(g.exports.map((e) => [e.name, e.path])));
  }

  async stat(target: GuestTarget): Promise<GuestFileStat> {
    const at = await this.#resolve(target, 'stat');
    if (at.full === at.root) {
      return this.#withDir(at, at.root, DIR_FLAGS, 'stat', async (fh) => toStat(await fh.stat({ bigint: true })));
    }
    // The parent is opened and checked; the name is then looked up inside that very directory (through its
    // descriptor) without following it, so neither a swapped parent nor a final symlink can lead outside.
    return this.#withDir(at, path.dirname(at.full), PARENT_FLAGS, 'stat', async (fh) => {
      const st = await fsp.lstat(`/proc/self/fd/${fh.fd}/${path.basename(at.full)}`, { bigint: true }).catch((err: unknown) => {
        throw this.#errnoError(err, 'lstat', 'stat', at.label);
      });
      return toStat(st);
    });
  }

  async readFile(target: GuestTarget, options: ReadOptions): Promise<{ data: Buffer; stat: GuestFileStat }> {
    const at = await this.#resolve(target, 'readFile');
    for (let tryNo = 1; tryNo <= READ_TRIES; tryNo++) {
      const fh = await this.#openFile(at, 'readFile');
      try {
        const before = await this.#regular(fh, at, 'readFile', options);
        const size = Number(before.size);
        // One byte past the size shows a file that grew after the fstat even when its times did not move yet.
        const data = Buffer.allocUnsafe(size + 1);
        let got = 0;
        while (got < data.length) {
          // In chunks: one huge pread would hold a thread-pool thread (of four) for the whole file.
          const { bytesRead } = await fh.read(data, got, Math.min(READ_CHUNK, data.length - got), got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        const after = await fh.stat({ bigint: true });
        if (got === size && sameVersion(before, after)) return { data: data.subarray(0, size), stat: toStat(after) };
      } finally {
        await fh.close();
      }
    }
    throw new ErrnoError(errno('EAGAIN'), 'read', at.label, {
      syscall: 'readFile', cause: new Error(`changed while being read, ${READ_TRIES} times: it is being written right now`),
    });
  }

  async createReadStream(target: GuestTarget, options: ReadOptions): Promise<{ stream: Readable; stat: GuestFileStat }> {
    const at = await this.#resolve(target, 'createReadStream');
    const fh = await this.#openFile(at, 'createReadStream');
    let before: BigIntStats;
    try {
      before = await this.#regular(fh, at, 'createReadStream', options);
    } catch (err) {
      await fh.close();
      throw err;
    }
    const label = at.label;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        const size = Number(before.size);
        for (let pos = 0; pos < size;) {
          const buf = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, size - pos));
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
        // Chunks already went out; all that is left is to say they do not form one version of the file.
        const after = await fh.stat({ bigint: true });
        if (!sameVersion(before, after)) {
          throw new ErrnoError(errno('EAGAIN'), 'read', label, {
            syscall: 'createReadStream', cause: new Error('changed while being read: it is being written right now'),
          });
        }
      } finally {
        await fh.close();
      }
    }
    return { stream: Readable.from(chunks(), { objectMode: false }), stat: toStat(before) };
  }

  async readdir(target: GuestTarget, options: { maxEntries?: number } = {}): Promise<GuestDirEntry[]> {
    const at = await this.#resolve(target, 'readdir');
    const max = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    return this.#withDir(at, at.full, DIR_FLAGS, 'readdir', async (fh) => {
      const out: GuestDirEntry[] = [];
      // Through the checked descriptor: the directory read is the one that was opened and checked.
      const dir = await fsp.opendir(`/proc/self/fd/${fh.fd}`);
      try {
        for await (const e of dir) {
          if (out.length === max) throw new LimitError('maxEntries', `${at.label} has more than ${max} entries`);
          const type: GuestFileType = e.isFile() ? 'file' : e.isDirectory() ? 'directory' : e.isSymbolicLink() ? 'symlink' : 'other';
          out.push({ name: e.name, type });
        }
      } finally {
        await dir.close().catch(() => undefined);
      }
      return out;
    });
  }

  /** Checks the target's names and path; the path is refused if it could mean anything but a plain descent. */
  async #resolve(t: GuestTarget, syscall: string): Promise<Resolved> {
    const label = `${t.guest}:${t.export}/${t.path}`;
    const dir = this.#exports.get(t.guest)?.get(t.export);
    if (dir === undefined) throw new ErrnoError(errno('ENOENT'), 'export', label, { syscall });
    if (typeof t.path !== 'string' || t.path.includes('\0') || t.path.startsWith('/')) {
      throw new ErrnoError(errno('EINVAL'), 'path', label, { syscall });
    }
    if (Buffer.byteLength(t.path) > MAX_PATH_BYTES) throw new ErrnoError(errno('ENAMETOOLONG'), 'path', label, { syscall });
    const parts = t.path === '' ? [] : t.path.split('/');
    // '..' is an attempt to climb out; '.' and empty components are never in an event's path.
    if (parts.includes('..')) throw new ErrnoError(errno('EACCES'), 'path', label, { syscall });
    if (parts.some((p) => p === '' || p === '.')) throw new ErrnoError(errno('EINVAL'), 'path', label, { syscall });
    const root = await fsp.realpath(dir).catch((err: unknown) => {
      throw this.#errnoError(err, 'realpath', syscall, label);
    });
    return { root, full: parts.length === 0 ? root : path.join(root, ...parts), label };
  }

  /** Throws EACCES (and closes `fh`) unless the open descriptor lies inside `root`. */
  async #confine(fh: FileHandle, at: Resolved, syscall: string): Promise<void> {
    const real = await fsp.readlink(`/proc/self/fd/${fh.fd}`).catch(async (err: unknown) => {
      await fh.close();
      throw this.#errnoError(err, 'readlink', syscall, at.label);
    });
    const inside = real === at.root || real.startsWith(at.root === '/' ? '/' : `${at.root}/`);
    if (!inside) {
      await fh.close();
      throw new ErrnoError(errno('EACCES'), 'open', at.label, {
        syscall, cause: new Error(`resolves outside its export, to ${real}`),
      });
    }
  }

  async #openFile(at: Resolved, syscall: string): Promise<FileHandle> {
    // A cheap look before opening: opening some device nodes has side effects. The fstat after the open is
    // what counts; this only keeps the common case from opening what it would refuse anyway.
    const pre = await fsp.lstat(at.full).catch((err: unknown) => {
      throw this.#errnoError(err, 'lstat', syscall, at.label);
    });
    if (pre.isSymbolicLink()) throw new ErrnoError(errno('ELOOP'), 'open', at.label, { syscall });
    if (!pre.isFile()) throw new ErrnoError(errno(pre.isDirectory() ? 'EISDIR' : 'EINVAL'), 'open', at.label, { syscall });
    const fh = await fsp.open(at.full, FILE_FLAGS).catch((err: unknown) => {
      throw this.#errnoError(err, 'open', syscall, at.label);
    });
    await this.#confine(fh, at, syscall);
    return fh;
  }

  /** fstat of an opened file: a regular file within the size cap, or the error (the caller closes `fh`). */
  async #regular(fh: FileHandle, at: Resolved, syscall: string, options: ReadOptions): Promise<BigIntStats> {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) throw new ErrnoError(errno(st.isDirectory() ? 'EISDIR' : 'EINVAL'), 'open', at.label, { syscall });
    // A file unlinked since the open is gone for the service too; its deletion event follows.
    if (st.nlink === 0n) throw new ErrnoError(errno('ENOENT'), 'open', at.label, { syscall });
    if (st.size > BigInt(options.maxBytes)) {
      throw new LimitError(options.limit ?? 'maxBytes', `${at.label} is ${st.size} bytes, more than ${options.maxBytes}`);
    }
    return st;
  }

  async #withDir<T>(at: Resolved, dir: string, flags: number, syscall: string, use: (fh: FileHandle) => Promise<T>): Promise<T> {
    const fh = await fsp.open(dir, flags).catch((err: unknown) => {
      throw this.#errnoError(err, 'open', syscall, at.label);
    });
    await this.#confine(fh, at, syscall);
    try {
      return await use(fh);
    } finally {
      await fh.close();
    }
  }

  #errnoError(err: unknown, op: string, syscall: string, label: string): ErrnoError {
    const code = (err as NodeJS.ErrnoException).code;
    const n = (code === undefined ? undefined : errnoNumber(code)) ?? errno('EIO');
    return new ErrnoError(n, op, label, { syscall, cause: err });
  }
}

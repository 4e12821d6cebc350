// A guest export mounted through fuse-native (libfuse2): the portable front end. The mount serves every FUSE
// call from this process's one JavaScript thread, so the process that owns a FuseMount must never make
// synchronous calls on its own mount point (they would wait for the thread that is waiting for them).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { silentLogger, type Logger } from '../util/log.ts';
import type { GuestFileHandle } from './file-handle.ts';
import { HandleTable } from './fuse-handles.ts';
import { PatchedFuse } from './fuse-native-fixes.ts';
import { fuseOperations } from './fuse-ops.ts';
import type { Guest } from './guest.ts';

export type FuseCacheMode = 'none' | 'auto';

export interface FuseMountOptions {
  /** The export to mount (the guest's first by default). */
  exportName?: string;
  /**
   * 'none' (default): no private copy of anything. Direct I/O (every read and write goes to dom0, whose page
   * cache is the one copy all guests share) and no attribute, entry or negative caching, so another guest's
   * write, create, rename or unlink is seen by the very next call here.
   * 'auto': the kernel's page cache and 1 s attribute/entry caching on this mount; cached pages are dropped at
   * open when the file's size or mtime changed (libfuse's auto_cache). Faster, one more copy of read data,
   * and other guests' changes may take up to a second to show.
   * Default: what dom0's configuration says for this guest (`cache` in its guest entry), else 'none'.
   */
  cache?: FuseCacheMode;
  /** Where unexpected failures of FUSE calls are reported (they reach applications as EIO). Default: silent. */
  logger?: Logger;
  /**
   * Let users other than the mounting one use the mount (allow_other): a sandboxed guest's workload runs as an
   * unprivileged uid while its front end mounts as root.
   */
  allowOther?: boolean;
  /**
   * How long the kernel may keep a name it looked up (a positive dentry) before asking dom0 again: 0 by default
   * with cache 'none', 1000 with 'auto'. Every call still goes to dom0 by path, so stat, open, read and readdir
   * see another guest's unlink or rename at once; what a cached name changes is that, for this long after another
   * guest removed it, creating it here again fails (open(O_CREAT) ENOENT; O_EXCL, mkdir, link, symlink EEXIST),
   * and a name that changed type answers one EIO. Each ms saves the LOOKUP round trips a path walk costs (the
   * metadata benchmark's create+stat+unlink drops from 13 FUSE requests to 7).
   */
  nameCacheMs?: number;
}

/** Longest name cache accepted: beyond a minute a name may outlive any reason to trust it. */
export const MAX_NAME_CACHE_MS = 60_000;

// Largest write libfuse2 accepts (its receive buffer is 32 pages plus a header); big_writes lets the kernel
// send writes that large instead of one page at a time.
const MAX_WRITE = 128 * 1024;

/** The `-o` options for a mount; see FuseMountOptions. */
export function mountOptions(fsname: string, opts: Pick<FuseMountOptions, 'cache' | 'allowOther' | 'nameCacheMs'> = {}): string[] {
  const nameCacheMs = opts.nameCacheMs;
  if (nameCacheMs !== undefined && (!Number.isInteger(nameCacheMs) || nameCacheMs < 0 || nameCacheMs > MAX_NAME_CACHE_MS)) {
    throw new RangeError(`nameCacheMs must be a whole number of ms in 0..${MAX_NAME_CACHE_MS}, got ${String(nameCacheMs)}`);
  }
  // use_ino: st_ino and d_ino are dom0's inode numbers (hard links share one), not libfuse's own counter.
  const common = [`fsname=${fsname}`, 'subtype=xenfs', 'use_ino', 'big_writes', `max_write=${MAX_WRITE}`];
  if (opts.allowOther === true) common.push('allow_other');
  const entry = (ms: number): string => `entry_timeout=${ms / 1000}`;
  if (opts.cache === 'auto') return [...common, 'auto_cache', ...(nameCacheMs === undefined ? [] : [entry(nameCacheMs)])];
  return [...common, 'direct_io', 'attr_timeout=0', entry(nameCacheMs ?? 0), 'negative_timeout=0'];
}

/** True if `dir` is a mount point now (any filesystem), from /proc/self/mountinfo. */
export function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash written as octal escapes.
  return info.split('\n').some((line) => {
    const field = line.split(' ')[4];
    return field !== undefined && field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target;
  });
}

export class FuseMount {
  /** The mount point, absolute. */
  readonly dir: string;
  /** The caching this mount was made with. */
  readonly cache: FuseCacheMode;
  readonly #fuse: PatchedFuse;
  readonly #handles: HandleTable<GuestFileHandle>;
  readonly #logger: Logger;
  #unmounting: Promise<void> | null = null;

  private constructor(dir: string, cache: FuseCacheMode, fuse: PatchedFuse, handles: HandleTable<GuestFileHandle>,
    logger: Logger) {
    this.dir = dir;
    this.cache = cache;
    this.#fuse = fuse;
    this.#handles = handles;
    this.#logger = logger;
  }

  /**
   * Mount `guest`'s export at `dir`, creating the directory if needed and first clearing a dead mount a killed
   * front end left there (ENOTCONN). Rejects if a live filesystem is mounted there. The guest connection stays
   * the caller's: unmount before closing it.
   */
  static async mount(guest: Guest, dir: string, opts: FuseMountOptions = {}): Promise<FuseMount> {
    const cache = opts.cache ?? guest.cacheMode;
    if (cache !== 'none' && cache !== 'auto') throw new RangeError(`cache must be 'none' or 'auto', got ${String(cache)}`);
    const logger = opts.logger ?? silentLogger;
    const exportInfo = guest.exportRoot(opts.exportName);
    const handles = new HandleTable<GuestFileHandle>();
    const ops = fuseOperations(guest.fs(exportInfo.name), handles, logger);
    // fsname shows as the source in /proc/mounts; libfuse splits options at commas, so keep it to safe bytes.
    const fsname = `xenfs:${guest.options.domain}:${exportInfo.name}`.replace(/[^A-Za-z0-9._:@+-]/g, '_');
    const absolute = path.resolve(dir);
    // timeout false: fuse-native would otherwise answer ETIMEDOUT after 15 s while our call still runs — and
    // then free the buffer that call is still reading into or writing from. A call waits at most as long as
    // the guest's waitMs while dom0 is away, and fails with EIO when dom0 drops it.
    const options = mountOptions(fsname, { cache, allowOther: opts.allowOther ?? false, nameCacheMs: opts.nameCacheMs });
    const fuse = new PatchedFuse(absolute, ops, { force: true, mkdir: true, timeout: false }, options);
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
    logger.log('info', 'guest export mounted', { dir: absolute, domain: guest.options.domain, export: exportInfo.name, cache });
    return new FuseMount(absolute, cache, fuse, handles, logger);
  }

  /** Files open through the mount right now. */
  get openFiles(): number {
    return this.#handles.size;
  }

  /**
   * Detach the mount (lazily: processes still using it keep their files until they let go) and release the open
   * files on dom0. Idempotent: later calls return the first call's promise.
   */
  unmount(): Promise<void> {
    this.#unmounting ??= this.#unmount();
    return this.#unmounting;
  }

  async #unmount(): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => this.#fuse.unmount((err) => (err ? reject(err) : resolve())));
    } catch (err) {
      // fusermount fails when the mount is already gone (someone ran umount); anything else gets a second try.
      if (isMountPoint(this.dir)) await promisify(execFile)('umount', ['-l', this.dir]);
      this.#logger.log('warn', 'fusermount failed; the mount is gone all the same', {
        dir: this.dir, error: err instanceof Error ? err.message : String(err),
      });
    }
    await Promise.allSettled(this.#handles.drain().map((h) => h.close()));
    this.#logger.log('info', 'guest export unmounted', { dir: this.dir });
  }
}

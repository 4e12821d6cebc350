// A guest export mounted by the native front end (docs/native-frontend.md): this process opens /dev/fuse, mounts
// and negotiates FUSE itself, and a C++ thread serves the connection over the guest's ring, with the kernel
// serving file data from backing files dom0 registers at open (passthrough). JavaScript only sets things up,
// hands the thread each new connection's ring and takes it down.
import fs from 'node:fs';
import path from 'node:path';
import { XenfsError } from '../errors.ts';
import { detachMount, openFuseConnection, type FuseConnection } from '../xen/fuse-kernel.ts';
import { FuseFrontend, type FrontendStats } from '../xen/fuse-frontend.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import type { Welcome } from '../protocol/control.ts';
import { DEFAULT_WAIT_MS, Guest, findExport, type GuestOptions, type TakenConnection } from './guest.ts';
import { isMountPoint } from './fuse-mount.ts';

/** One ring request carries at most 128 KiB, so that is the most a write through dom0 can be. */
const MAX_WRITE = 128 * 1024;

export interface NativeMountOptions {
  /** The export to mount (the guest's first by default). */
  exportName?: string;
  logger?: Logger;
  /** Let users other than the mounting one use the mount (a sandboxed guest's workload). */
  allowOther?: boolean;
  /** Ask for kernel passthrough (default true). Without it every read and write goes through dom0. */
  passthrough?: boolean;
  /** Mount this /dev/fuse descriptor (duplicated) instead of opening one. */
  fuseFd?: number;
  /**
   * Refuse (XENFS_ERR_UNSUPPORTED, before contacting dom0) when the kernel cannot mount a FUSE connection here or
   * does not agree to passthrough: the caller then falls back to fuse-native.
   */
  requirePassthrough?: boolean;
  /** How long the kernel may keep names and attributes. 0 (default): every lookup and stat asks dom0. */
  entryTimeoutMs?: number;
  attrTimeoutMs?: number;
}

export class NativeMount {
  readonly dir: string;
  readonly guest: Guest;
  /** Passthrough was negotiated with the kernel: file data never crosses the ring. */
  readonly passthrough: boolean;
  readonly #conn: FuseConnection;
  readonly #frontend: FuseFrontend;
  readonly #logger: Logger;
  #unmounting: Promise<void> | null = null;

  private constructor(dir: string, guest: Guest, conn: FuseConnection, frontend: FuseFrontend, logger: Logger) {
    this.dir = dir;
    this.guest = guest;
    this.passthrough = conn.passthrough;
    this.#conn = conn;
    this.#frontend = frontend;
    this.#logger = logger;
  }

  /**
   * Mounts at `dir` (made if missing; a dead mount left there by a killed front end is cleared first), connects
   * to dom0 with `connect`, and serves. The guest connection belongs to the mount: unmount() closes it.
   */
  static async mount(connect: Omit<GuestOptions, 'takeOver' | 'transport'>, dir: string,
    opts: NativeMountOptions = {}): Promise<NativeMount> {
    const logger = opts.logger ?? silentLogger;
    const absolute = path.resolve(dir);
    clearDeadMount(absolute);
    fs.mkdirSync(absolute, { recursive: true });
    // Made at the first connection, when dom0 has said which export this is (the mount's source names it).
    let served: Served | null = null;
    const serve = (welcome: Welcome): Served => {
      if (served) return served;
      const exp = findExport(welcome.exports, opts.exportName, connect.domain);
      const conn = openConnection(absolute, `xenfs:${connect.domain}:${exp.name}`, opts);
      try {
        const frontend = new FuseFrontend(conn.fd, {
          passthrough: conn.passthrough, maxWrite: MAX_WRITE, entryTimeoutMs: opts.entryTimeoutMs ?? 0,
          attrTimeoutMs: opts.attrTimeoutMs ?? 0, waitMs: connect.waitMs ?? DEFAULT_WAIT_MS,
        });
        served = { conn, frontend, root: exp.node };
        return served;
      } catch (err) {
        conn.close();
        throw err;
      }
    };
    const takeOver = async (c: TakenConnection): Promise<void> => {
      const { conn, frontend, root } = serve(c.welcome);
      // dom0 must hold the FUSE connection before the first open asks it to register a backing file there.
      if (conn.passthrough) await c.attachFuse(conn.fd, root);
      const ring = c.handOver();
      try {
        frontend.attach({ ...ring, root });
      } finally {
        for (const fd of [ring.memFd, ring.rxFd, ring.txFd]) fs.closeSync(fd);
      }
    };
    let guest: Guest;
    try {
      guest = await Guest.connect({ ...connect, transport: 'ring', takeOver });
    } catch (err) {
      stopServing(served);
      throw err;
    }
    const { conn, frontend } = mustHave(served);
    guest.on('state', (state) => {
      if (state === 'Closed') frontend.detach();
    });
    const m = new NativeMount(absolute, guest, conn, frontend, logger);
    void frontend.exited.then((e) => {
      if (!m.#unmounting) logger.log(e.errno ? 'error' : 'warn', 'native front end stopped', { dir: absolute, ...e });
    });
    logger.log('info', 'guest export mounted', {
      dir: absolute, domain: connect.domain, export: guest.exportRoot(opts.exportName).name, frontend: 'native',
      passthrough: conn.passthrough,
    });
    return m;
  }

  /** What the front end's thread has done so far; null once unmounted. */
  stats(): FrontendStats | null {
    return this.#frontend.stats();
  }

  /**
   * Detaches the mount lazily, stops serving and closes the guest connection (dom0 then drops its copy of the
   * FUSE descriptor, which ends the connection for any process still inside). Idempotent.
   */
  unmount(): Promise<void> {
    this.#unmounting ??= this.#unmount();
    return this.#unmounting;
  }

  async #unmount(): Promise<void> {
    this.#conn.close();
    this.#frontend.stop();
    await this.guest.close();
    this.#logger.log('info', 'guest export unmounted', { dir: this.dir });
  }
}

interface Served {
  conn: FuseConnection;
  frontend: FuseFrontend;
  root: number;
}

// Through functions: TypeScript cannot see that the connect callback assigned `served`.
function stopServing(served: Served | null): void {
  served?.frontend.stop();
  served?.conn.close();
}

function mustHave(served: Served | null): Served {
  if (!served) throw new XenfsError('XENFS_ERR_INTERNAL', 'connected without taking the ring over');
  return served;
}

/** Mounts and negotiates; XENFS_ERR_UNSUPPORTED for what auto selection should fall back from. */
function openConnection(dir: string, fsname: string, opts: NativeMountOptions): FuseConnection {
  let conn: FuseConnection;
  try {
    conn = openFuseConnection(dir, {
      allowOther: opts.allowOther ?? false, passthrough: opts.passthrough ?? true, maxWrite: MAX_WRITE,
      fsname: fsname.replace(/[^A-Za-z0-9._:@+-]/g, '_'), fd: opts.fuseFd,
    });
  } catch (err) {
    if (!opts.requirePassthrough) throw err;
    throw new XenfsError('XENFS_ERR_UNSUPPORTED', `no FUSE connection for the native front end: ${(err as Error).message}`,
      { cause: err });
  }
  if (opts.requirePassthrough && !conn.passthrough) {
    conn.close();
    throw new XenfsError('XENFS_ERR_UNSUPPORTED', `the kernel (FUSE 7.${conn.kernelMinor}) did not agree to passthrough`);
  }
  return conn;
}

/**
 * A killed front end leaves a mount nobody serves (ENOTCONN, or ECONNABORTED once aborted): it is detached so the
 * directory can be mounted again. A live filesystem there is refused, as fuse-native's front end does.
 */
function clearDeadMount(dir: string): void {
  try {
    fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') detachMount(dir);
    return;
  }
  if (isMountPoint(dir)) throw new XenfsError('XENFS_ERR_CONFIG', `${dir} is already a mount point`);
}

// dom0's per-guest request engine: a native thread that serves one guest's ring or stream without a hop into
// JavaScript per request (see native/src/session.hpp).
import { errno } from '../errors.ts';
import { EventLogFile } from './event-log.ts';
import { native, type NativeEngine, type NativeEngineStats } from './native.ts';

export interface EngineExport {
  path: string;
  readOnly: boolean;
  /** No passthrough for files the guest may write: their writes come through dom0. */
  writesViaDom0?: boolean;
}

export interface EngineLimits {
  maxNodes?: number;
  maxHandles?: number;
  maxXattrSize?: number;
  /** Largest size a guest may grow a file to (EFBIG beyond). */
  maxFileSize?: number;
  maxMappedGrants?: number;
  maxBytesInFlight?: number;
  spinMicros?: number;
  /** File locks the guest may hold, and its lock requests waiting at once (ENOLCK beyond either). */
  maxLocks?: number;
  maxLockWaiters?: number;
}

export interface IdRange {
  guest: number;
  host: number;
  count: number;
}

interface EngineCommon {
  exports: EngineExport[];
  features: number;
  limits: EngineLimits;
  /** Host ids dom0 takes on for this guest's filesystem calls; absent, dom0 acts as itself. */
  identity?: { uid: number; gid: number };
  /** How owners look to the guest: host ids are shown as guest ids, and chown maps back. */
  idMap?: { uid: IdRange[]; gid: IdRange[] };
  /** Reports the guest's changes into this log, under the guest's name and one name per export (in order). */
  events?: { log: EventLogFile; guest: string; exports: string[] };
}

export interface RingEngineOptions extends EngineCommon {
  transport: 'ring';
  memFd: number;
  memPages: number;
  grantTable: { offset: number; entries: number };
  ringRefs: number[];
  ringSlots: number;
  /** guest → dom0 notifications */
  evtRxFd: number;
  /** dom0 → guest notifications */
  evtTxFd: number;
}

export interface StreamEngineOptions extends EngineCommon {
  transport: 'stream';
  fd: number;
}

export type EngineOptions = RingEngineOptions | StreamEngineOptions;
export type EngineStats = NativeEngineStats;

/** Starts serving at construction. Descriptors in the options are dup()ed; the caller still closes its own. */
export class Engine {
  #engine: NativeEngine | null;

  constructor(options: EngineOptions, onEnd: (violation: boolean, reason: string) => void) {
    const events = options.events && { ...options.events, log: EventLogFile.nativeOf(options.events.log) };
    this.#engine = new native.Engine({ ...options, events }, onEnd);
  }

  static configureWorkers(threads: number): void {
    native.configureWorkers(threads);
  }

  /** Stops serving, waits for in-flight work and closes everything the guest held open. Idempotent. */
  stop(): void {
    this.#engine?.stop();
    this.#engine = null;
  }

  stats(): EngineStats | null {
    return this.#engine?.stats() ?? null;
  }

  /**
   * Hands the guest's FUSE connection (a /dev/fuse descriptor it mounted on export root node `root`) to the engine,
   * which keeps its own duplicate until it stops, and pushes other guests' changes to it as invalidations. 0, or
   * the errno saying why not: ENODEV (not /dev/fuse), EINVAL (`root` is not an export root), EBUSY (one is
   * attached), ENOTCONN (stopped). The caller closes its `fd` either way.
   */
  attachFuse(fd: number, root: number): number {
    return this.#engine ? this.#engine.attachFuse(fd, root) : errno('ENOTCONN');
  }
}

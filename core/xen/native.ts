// The only module that loads the addon. It declares the addon's shape; everything else in core reaches native
// code through the typed classes of core/xen, never through this object.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { RingFront, RingLayout } from './platform.ts';

export interface NativeGuestMemory {
  readonly fd: number;
  readonly pages: number;
  readonly buffer: ArrayBuffer;
  close(): void;
}

export interface NativeGrantTable {
  grant(ref: number, domid: number, frame: number, readOnly: boolean): void;
  grantMany(refs: Uint32Array, frames: Uint32Array, domid: number, readOnly: boolean): void;
  endAccess(ref: number): boolean;
  endMany(refs: Uint32Array): number;
}

export interface NativeGrantMapping {
  readonly id: number;
  read(): Buffer | null;
  write(offset: number, data: Buffer): void;
}

export interface NativeGrantMap {
  map(refs: number[] | Uint32Array, writable: boolean): NativeGrantMapping;
  unmap(id: number): void;
  readonly mapped: number;
}

export interface NativeEventChannel {
  bind(cb: (count: number) => void): void;
  notify(): void;
  mask(): void;
  unmask(): void;
  pending(): number;
  close(): void;
}

/** The addon's ring is exactly the platform's ring front (core/xen/platform.ts). */
export type NativeFrontRing = RingFront;

export interface NativeFdWatcher {
  stop(): void;
}

export interface NativeEngineStats {
  requests: number;
  errors: number;
  /** Requests served on the worker pool rather than the guest's own session thread. */
  pooled: number;
  wakeups: number;
  notifies: number;
  inFlight: number;
  bytesInFlight: number;
  /** File data read and written through dom0 (passthrough I/O never reaches it). */
  bytesRead: number;
  bytesWritten: number;
  handles: number;
  nodes: number;
  mappedGrants: number;
  /** The guest's FUSE connection is attached (see Engine.attachFuse). */
  fuseAttached: boolean;
  /** FUSE backing files registered for the guest's open handles (one per handle that asked, until RELEASE). */
  backingFiles: number;
  /** Change events of this guest's that the event log failed to take (its disk full); reconciliation finds them. */
  eventsLost: number;
}

export interface NativeEngine {
  stop(): void;
  stats(): NativeEngineStats | null;
  /** 0, or the errno saying why not (ENODEV, EINVAL, EBUSY, ENOTCONN). The caller keeps and closes its `fd`. */
  attachFuse(fd: number, root: number): number;
}

/** One record for the change-event log; `kind` and `origin` are indexes (core/events/change-event.ts order). */
export interface NativeEventRecord {
  kind: number;
  origin: number;
  dir: boolean;
  guest: string;
  export: string;
  path: string;
  oldPath?: string;
  size: number;
  mtime: number;
  ino: number;
}

/** Segments before `segment` (named by their first seq), and `segment` up to `offset`, are whole and synced. */
export interface NativeEventPosition {
  segment: number;
  offset: number;
  lastSeq: number;
}

export interface NativeEventLog {
  /** The record's seq; throws an Error with `errno` when the append failed. */
  append(record: NativeEventRecord): number;
  position(): NativeEventPosition;
  failed(): number;
  close(): void;
}

export interface AcceptedConnection {
  fd: number;
  pid: number;
  uid: number;
  gid: number;
}

export type ReceivedMessage =
  | { data: Buffer; fds: number[]; truncated?: boolean; eof?: undefined }
  | { eof: true };

export interface NativeAddon {
  GuestMemory: new (pages: number, name?: string) => NativeGuestMemory;
  GrantTable: new (memory: NativeGuestMemory, offset: number, entries: number) => NativeGrantTable;
  GrantMap: new (
    memFd: number,
    memPages: number,
    tableOffset: number,
    entries: number,
    opts?: { domid?: number; maxMapped?: number },
  ) => NativeGrantMap;
  EventChannel: new (rxFd: number, txFd: number) => NativeEventChannel;
  FrontRing: new (memory: NativeGuestMemory, offset: number, slots: number) => NativeFrontRing;
  FdWatcher: new (fd: number, cb: (events: number) => void) => NativeFdWatcher;
  Engine: new (options: object, onEnd: (violation: boolean, reason: string) => void) => NativeEngine;
  EventLog: new (dir: string, options: { segmentBytes: number; syncIntervalMs: number }, onSynced: () => void) =>
    NativeEventLog;
  configureWorkers(n: number): void;
  listenSeqpacket(path: string): number;
  listenStream(path: string): number;
  listenTcp(host: string, port: number): { fd: number; port: number };
  connectSeqpacket(path: string): number;
  accept(fd: number): AcceptedConnection | null;
  sendMessage(fd: number, data: Buffer, fds?: number[]): void;
  recvMessage(fd: number): ReceivedMessage | null;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  createEventFd(): number;
  fuseProbe(dir: string, opts?: { allowOther?: boolean; passthrough?: boolean; backingFile?: string; keep?: boolean;
    maxWrite?: number; fsname?: string; fd?: number }): NativeFuseProbe;
  FuseFrontend: new (options: NativeFrontendOptions, onExit: (errno: number, why: string) => void) => NativeFuseFrontend;
  /** umount2(dir, MNT_DETACH): 0 or errno. */
  fuseDetach(dir: string): number;
  /** 0 when the descriptor is /dev/fuse, else the errno saying why not (ENODEV for another file). */
  fuseDeviceCheck(fd: number): number;
}

export interface NativeFrontendOptions {
  /** A mounted FUSE connection whose INIT is answered (duplicated: the caller keeps its own). */
  fd: number;
  /** Passthrough was negotiated: ask dom0 for a backing file at every open. */
  passthrough: boolean;
  /** The largest write the connection was negotiated with (≤ 128 KiB, one ring request). */
  maxWrite?: number;
  /** How long the kernel may trust a looked-up name and a file's attributes. 0: ask dom0 every time. */
  entryTimeoutMs?: number;
  attrTimeoutMs?: number;
  /** How long requests wait for dom0 while no ring is attached, then fail with EIO. */
  waitMs?: number;
  /** Spin this long for a response before sleeping on the event channel. */
  pollMicros?: number;
}

export interface NativeRingLink extends RingLayout {
  /** dom0's node id of the mounted export's root in this session. */
  root: number;
}

export interface NativeFrontendStats {
  requests: number;
  forwarded: number;
  dataRequests: number;
  passthroughOpens: number;
  directOpens: number;
  failedDisconnected: number;
  attaches: number;
  inFlight: number;
  attached: boolean;
}

export interface NativeFuseFrontend {
  attach(link: NativeRingLink): void;
  detach(): void;
  stop(): void;
  stats(): NativeFrontendStats | null;
}

export interface NativeFuseProbe {
  kernelMajor: number;
  kernelMinor: number;
  minor: number;
  passthrough: boolean;
  /** Hex, 64 bits: flags | flags2 << 32. */
  kernelFlags: string;
  flags: string;
  backingId?: number;
  backingClosed?: boolean;
  backingError?: number;
  /** With `keep`: the live connection, still mounted. */
  fd?: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const native = require(path.join(here, '..', '..', 'build', 'Release', 'xenfs_native.node')) as NativeAddon;

/**
 * The program that starts a guest's front end unprivileged, in a user namespace of its own with a /dev/fuse opened
 * there (native/enter/xenfs-enter.c), built beside the addon.
 */
export const ENTER_PROGRAM = path.join(here, '..', '..', 'build', 'Release', 'xenfs-enter');

// What the running kernel's FUSE offers, learnt the only reliable way: mount a connection on an empty directory,
// take the kernel's INIT, answer it, and unmount. The native front end needs protocol 7.40+ with passthrough
// (read, write and mmap served from a backing file dom0 registers); without it `xenfs guest` uses fuse-native.
import { native, type NativeFuseProbe } from './native.ts';

export interface FuseKernelInfo {
  /** The kernel's FUSE protocol version. */
  kernelMajor: number;
  kernelMinor: number;
  /** The minor version a XenFS connection speaks with it (the smaller of the kernel's and ours). */
  minor: number;
  /** Passthrough was offered and agreed. */
  passthrough: boolean;
  /** Every INIT flag the kernel offered (flags | flags2 << 32). */
  kernelFlags: bigint;
  /** The flags agreed. */
  flags: bigint;
  /** With `backingFile`: the id the kernel gave it, or why it refused (an errno). */
  backingId?: number;
  backingError?: number;
}

export interface FuseProbeOptions {
  allowOther?: boolean;
  /** Ask for passthrough (default true). */
  passthrough?: boolean;
  /** Also register this file as a backing file, and drop it again. */
  backingFile?: string;
  /** The largest write the kernel may send in one request (default 1 MiB). */
  maxWrite?: number;
  /** The source /proc/mounts shows (default xenfs-probe); no commas. */
  fsname?: string;
  /** A /dev/fuse descriptor to mount (duplicated) instead of opening one: see native/enter/xenfs-enter.c. */
  fd?: number;
}

/**
 * Mounts a FUSE connection at `dir` (an empty directory), negotiates INIT and unmounts. Needs the right to mount
 * (root, or a user namespace with its own mount namespace). Throws an Error with `errno` when the kernel refuses.
 * The mount never serves a request: nothing may touch `dir` while the probe runs.
 */
export function probeFuseKernel(dir: string, opts: FuseProbeOptions = {}): FuseKernelInfo {
  const r = native.fuseProbe(dir, opts);
  const info = kernelInfo(r);
  if (r.backingId !== undefined) info.backingId = r.backingId;
  if (r.backingError !== undefined) info.backingError = r.backingError;
  return info;
}

function kernelInfo(r: NativeFuseProbe): FuseKernelInfo {
  return {
    kernelMajor: r.kernelMajor, kernelMinor: r.kernelMinor, minor: r.minor, passthrough: r.passthrough,
    kernelFlags: BigInt(r.kernelFlags), flags: BigInt(r.flags),
  };
}

/** A FUSE connection mounted and negotiated, not yet served: `fd` is the caller's to serve or hand on. */
export interface FuseConnection extends FuseKernelInfo {
  fd: number;
  dir: string;
  /** Detaches the mount and closes this process's descriptor. Idempotent. */
  close(): void;
}

/**
 * Mounts a FUSE connection at `dir` and negotiates INIT, as `probeFuseKernel` does, but keeps it. Until something
 * serves `fd`, any access to `dir` waits: only other processes may be let near it, and close() detaches it.
 */
export function openFuseConnection(dir: string, opts: Omit<FuseProbeOptions, 'backingFile'> = {}): FuseConnection {
  const r = native.fuseProbe(dir, { ...opts, keep: true });
  const fd = r.fd;
  if (fd === undefined) throw new Error('fuseProbe kept no connection');
  let open = true;
  return {
    ...kernelInfo(r), fd, dir,
    close: () => {
      if (!open) return;
      open = false;
      native.fuseDetach(dir);
      native.closeFd(fd);
    },
  };
}

/** True when `fd` is an open /dev/fuse: checked before dom0 trusts a descriptor a guest passed it. */
export function isFuseDevice(fd: number): boolean {
  return native.fuseDeviceCheck(fd) === 0;
}

/** Lazily detaches whatever is mounted at `dir` (umount2 MNT_DETACH): 0 or the errno. */
export function detachMount(dir: string): number {
  return native.fuseDetach(dir);
}

// Mounting a guest export with the front end that suits the kernel: the native one (its own FUSE connection,
// served from C++, file data through kernel passthrough) where the kernel agrees to passthrough, fuse-native
// (libfuse2, every byte through dom0) elsewhere, or whichever the caller insists on.
import { XenfsError } from '../errors.ts';
import type { Logger } from '../util/log.ts';
import { FuseMount, type FuseCacheMode } from './fuse-mount.ts';
import { Guest, type GuestOptions } from './guest.ts';
import { NativeMount } from './native-mount.ts';

export type FrontendChoice = 'auto' | 'native' | 'fuse-native';
export type FrontendKind = 'native' | 'fuse-native';

export interface ExportMountOptions {
  exportName?: string;
  /** Default: what dom0's configuration says for this guest. */
  cache?: FuseCacheMode;
  nameCacheMs?: number;
  allowOther?: boolean;
  frontend?: FrontendChoice;
  /** Ask the kernel for passthrough (default true); 'auto' picks fuse-native without it. */
  passthrough?: boolean;
  /** A /dev/fuse descriptor for the native front end to mount, instead of opening one (a user namespace's). */
  fuseFd?: number;
  logger?: Logger;
}

/** A mounted export and the connection serving it; close() unmounts and disconnects. */
export interface MountedExport {
  readonly dir: string;
  readonly frontend: FrontendKind;
  readonly cache: FuseCacheMode;
  readonly passthrough: boolean;
  readonly guest: Guest;
  close(): Promise<void>;
}

/**
 * How long the native front end lets the kernel keep names and attributes. dom0 pushes an invalidation to every
 * other guest before a change returns (docs/native-frontend.md), so this bounds only what nothing announces:
 * changes made on dom0 directly, outside XenFS.
 */
export const NATIVE_CACHE_MS = 60_000;

export async function mountExport(connect: Omit<GuestOptions, 'takeOver'>, dir: string,
  opts: ExportMountOptions = {}): Promise<MountedExport> {
  const choice = opts.frontend ?? 'auto';
  if (choice !== 'fuse-native') {
    const m = await NativeMount.mount(connect, dir, {
      exportName: opts.exportName, allowOther: opts.allowOther, passthrough: opts.passthrough ?? true, fuseFd: opts.fuseFd,
      requirePassthrough: choice === 'auto', logger: opts.logger,
      entryTimeoutMs: opts.nameCacheMs ?? NATIVE_CACHE_MS, attrTimeoutMs: NATIVE_CACHE_MS,
    }).catch((err: unknown) => {
      if (choice === 'auto' && err instanceof XenfsError && err.code === 'XENFS_ERR_UNSUPPORTED') return null;
      throw err;
    });
    if (m) {
      return {
        dir: m.dir, frontend: 'native', cache: opts.cache ?? m.guest.cacheMode, passthrough: m.passthrough, guest: m.guest,
        close: () => m.unmount(),
      };
    }
    opts.logger?.log('info', 'kernel passthrough unavailable: using the fuse-native front end', { dir });
  }
  const guest = await Guest.connect(connect);
  try {
    const m = await FuseMount.mount(guest, dir, {
      exportName: opts.exportName, cache: opts.cache, nameCacheMs: opts.nameCacheMs, allowOther: opts.allowOther,
      logger: opts.logger,
    });
    return {
      dir: m.dir, frontend: 'fuse-native', cache: m.cache, passthrough: false, guest,
      close: async () => {
        await m.unmount();
        await guest.close();
      },
    };
  } catch (err) {
    await guest.close();
    throw err;
  }
}

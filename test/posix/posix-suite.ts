// The POSIX behaviour suite, for any front end that mounts a guest export: `posixSuite(name, setup)` registers
// the tests under one describe(); `setup` mounts (in another process: a process must not call synchronously into
// a mount it serves) and says where. Each test works in a fresh directory of its own under the mount, and
// reaches the mount only through fs/promises or child processes, so a hung mount times a test out instead of
// freezing the runner. Checks are exact: the errno Linux gives on a local filesystem, byte-for-byte data.
import { after, before, describe } from 'node:test';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { dataCases } from './data-cases.ts';
import { errnoCases } from './errno-cases.ts';
import { metadataCases } from './metadata-cases.ts';
import { namespaceCases } from './namespace-cases.ts';

export interface PosixTarget {
  /** A directory on the mount the suite may fill (it makes one subdirectory per test). */
  dir: string;
  /** The same directory as dom0 sees it, when the test can reach it: lets tests build large fixtures fast. */
  hostDir?: string;
  /**
   * lchown and lutimes change a symlink itself, as on a local filesystem (the native front end addresses nodes);
   * otherwise they are refused with ENOTSUP (fuse-native reaches files by path, and would change the target).
   */
  symlinkMetadata?: boolean;
  /** Undo what setup did (unmount, stop processes). */
  close(): Promise<void>;
}

/** What each group of cases gets. */
export interface PosixContext {
  /** A new empty directory on the mount, for one test. */
  fresh(): Promise<string>;
  /** `mountPath`'s twin in the host directory, if the target has one. */
  hostPath(mountPath: string): string | undefined;
  /** See PosixTarget.symlinkMetadata. */
  symlinkMetadata(): boolean;
}

export function posixSuite(name: string, setup: () => Promise<PosixTarget>): void {
  describe(name, { timeout: 120_000 }, () => {
    let target: PosixTarget | undefined;
    let count = 0;
    const mounted = (): PosixTarget => {
      if (target === undefined) throw new Error('the mount under test was not set up');
      return target;
    };
    before(async () => {
      target = await setup();
    });
    after(async () => {
      await target?.close();
    });
    const ctx: PosixContext = {
      async fresh() {
        const dir = path.join(mounted().dir, `t${++count}`);
        await fsp.mkdir(dir);
        return dir;
      },
      symlinkMetadata: () => mounted().symlinkMetadata === true,
      hostPath(mountPath) {
        const t = mounted();
        return t.hostDir === undefined ? undefined : path.join(t.hostDir, path.relative(t.dir, mountPath));
      },
    };
    errnoCases(ctx);
    dataCases(ctx);
    namespaceCases(ctx);
    metadataCases(ctx);
  });
}

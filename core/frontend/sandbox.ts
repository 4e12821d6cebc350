// A guest domain isolated the way a VM would be, on one kernel: its own mount, PID and network namespaces (only a
// loopback interface, down), a root of its own holding nothing of dom0's but the few system directories a
// workload needs to run (read-only) and the guest's XenFS mount, and the workload running as an unprivileged uid
// with no way to gain privileges. The guest's front end — its "kernel" — stays outside that root, in the same
// namespaces, and is the only thing that talks to dom0 (control socket and shared memory).
//
// Two steps, two processes: `enterNamespaces` (in dom0's namespaces, root) re-executes the CLI under unshare(1);
// inside, `buildRoot` and `runWorkload` do the rest.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsError } from '../errors.ts';
import { ENTER_PROGRAM } from '../xen/native.ts';

/** System directories a workload may read (never /etc, /root, /home, /var, /srv, /tmp of dom0). */
export const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib64'];
/** Device nodes a workload gets, bound from dom0's /dev one by one. */
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

export interface SandboxRoot {
  /** The workload's `/`, a private tmpfs. */
  root: string;
  /** Where the XenFS mount goes, inside `root`. */
  mountpoint: string;
  /** Unmounts everything under root and removes it; idempotent. */
  cleanup(): void;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new XenfsError('XENFS_ERR_SANDBOX', `sandbox: ${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }
}

/** The first child of process `pid` (from /proc), or null when it has none (yet, or any more). */
function firstChild(pid: number): number | null {
  try {
    const first = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : null;
  } catch {
    return null;
  }
}

/** Host ids a guest's front end runs as: `base` is its uid and gid 0, `count` ids from there are mapped. */
export interface GuestIds {
  base: number;
  count: number;
}

/** Ids for `domain`'s front end: a 65536-id range of its own, chosen by name, above the host's ordinary ids. */
export function guestIds(domain: string): GuestIds {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(domain)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  // 16384 ranges from 2^30: clear of the uids distributions hand out, and of each other unless names collide.
  return { base: 2 ** 30 + (h % 16384) * 65536, count: 65536 };
}

/**
 * Re-runs `argv` (a CLI invocation) in new mount, PID and network namespaces; resolves with its exit code. The
 * child becomes PID 1 of its namespace, so when it exits every process of the guest is gone with it. SIGINT and
 * SIGTERM are passed to that child, which stops its workload and unmounts.
 *
 * With `ids`, the child also gets a user namespace of its own (uid 0 there is `ids.base` on the host) and a
 * /dev/fuse opened in it, as XENFS_FUSE_FD: the front end then holds no privilege on the host at all.
 */
export function enterNamespaces(argv: string[], env: NodeJS.ProcessEnv = process.env, ids?: GuestIds): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = ids
      ? spawn(ENTER_PROGRAM, [String(ids.base), String(ids.count), '--', ...argv], { stdio: 'inherit', env })
      : spawn('unshare', ['--mount', '--pid', '--net', '--fork', '--propagation', 'private', '--', ...argv], {
        stdio: 'inherit',
        env,
      });
    const forward = (sig: NodeJS.Signals): void => {
      // xenfs-enter passes signals on itself. Not to unshare: with --fork it blocks SIGINT and SIGTERM and only
      // waits. Its child is the front end, PID 1 of the new namespace, which a signal from outside reaches because
      // it handles them. Before that child exists there is nothing to stop cleanly, and unshare goes at once.
      if (ids) {
        child.kill(sig);
        return;
      }
      const inner = child.pid === undefined ? null : firstChild(child.pid);
      try {
        if (inner !== null) process.kill(inner, sig);
        else child.kill('SIGKILL');
      } catch {
        // gone already
      }
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}

/**
 * A new empty directory for a sandbox root, in /tmp: an unprivileged front end must reach it to mount on it, and
 * $TMPDIR may be a directory only root can enter.
 */
export function makeRootDir(): string {
  return fs.mkdtempSync('/tmp/xenfs-sandbox-');
}

/**
 * Builds the workload's root on `root`, an empty directory (a new one by default). Must run inside the private
 * mount namespace `enterNamespaces` made: every mount here is invisible to dom0 and vanishes with the namespace;
 * seen from dom0, `root` stays an empty directory, which whoever made it removes.
 */
export function buildRoot(mountDir: string, given?: string): SandboxRoot {
  const root = given ?? makeRootDir();
  if (!path.isAbsolute(mountDir)) throw new XenfsError('XENFS_ERR_SANDBOX', `sandbox: --mount ${mountDir} must be absolute`);
  run('mount', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev', 'xenfs-root', root]);
  for (const dir of SYSTEM_DIRS) {
    const real = fs.realpathSync(dir);
    if (real !== dir) {
      // /bin and friends are symlinks into /usr on Debian: the same link inside the sandbox resolves the same way.
      fs.symlinkSync(path.relative('/', real), path.join(root, dir.slice(1)));
      continue;
    }
    const target = path.join(root, dir.slice(1));
    fs.mkdirSync(target, { recursive: true });
    run('mount', ['--bind', dir, target]);
    run('mount', ['-o', 'remount,bind,ro,nosuid,nodev', target]);
  }
  fs.mkdirSync(path.join(root, 'dev'));
  run('mount', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid', 'xenfs-dev', path.join(root, 'dev')]);
  for (const d of DEVICES) {
    if (!fs.existsSync(`/dev/${d}`)) continue;
    const target = path.join(root, 'dev', d);
    fs.writeFileSync(target, '');
    run('mount', ['--bind', `/dev/${d}`, target]);
  }
  fs.mkdirSync(path.join(root, 'proc'));
  // A /proc of the new PID namespace: the workload sees its own processes only.
  run('mount', ['-t', 'proc', '-o', 'nosuid,nodev,noexec', 'proc', path.join(root, 'proc')]);
  fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
  run('mount', ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'xenfs-tmp', path.join(root, 'tmp')]);
  const mountpoint = path.join(root, mountDir.slice(1));
  fs.mkdirSync(mountpoint, { recursive: true });
  let cleaned = false;
  return {
    root,
    mountpoint,
    cleanup: () => {
      if (cleaned) return;
      cleaned = true;
      // Lazily, deepest first: the namespace dies with us anyway, this keeps a long-lived init tidy.
      spawnSync('umount', ['-R', '-l', root]);
      // A directory handed in is its maker's to remove (an unprivileged front end could not).
      if (given === undefined) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface Workload {
  command: string[];
  uid: number;
  gid: number;
  /** The workload's working directory inside the sandbox (default the XenFS mount). */
  cwd: string;
  /** When aborted, the workload gets SIGTERM, and SIGKILL if it is still running `graceMs` later. */
  stop?: AbortSignal;
  /** Default 10 s. */
  graceMs?: number;
}

/**
 * Runs the workload inside `root` as an unprivileged user that cannot regain privileges (no_new_privs, no
 * supplementary groups); resolves with its exit code.
 */
export function runWorkload(root: string, w: Workload): Promise<number> {
  if (w.uid === 0 || w.gid === 0) {
    return Promise.reject(new XenfsError('XENFS_ERR_SANDBOX', 'sandbox: the workload must not run as root'));
  }
  const inner = [
    'setpriv', `--reuid=${w.uid}`, `--regid=${w.gid}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all',
    '--', 'sh', '-c', 'cd "$1" && shift && exec "$@"', 'sandbox', w.cwd, ...w.command,
  ];
  // Looked up here: the workload's environment below has the sandbox's PATH, not dom0's.
  const chroot = ['/usr/sbin/chroot', '/usr/bin/chroot', '/sbin/chroot'].find((p) => fs.existsSync(p));
  if (!chroot) return Promise.reject(new XenfsError('XENFS_ERR_SANDBOX', 'sandbox: chroot(8) not found'));
  return new Promise((resolve, reject) => {
    const child = spawn(chroot, [root, ...inner], {
      stdio: 'inherit',
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: w.cwd, LANG: 'C.UTF-8' },
    });
    let killTimer: NodeJS.Timeout | undefined;
    // chroot, setpriv and sh each exec the next, so this child is the workload itself.
    const stop = (): void => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), w.graceMs ?? 10_000);
    };
    if (w.stop?.aborted) stop();
    else w.stop?.addEventListener('abort', stop, { once: true });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(killTimer);
      w.stop?.removeEventListener('abort', stop);
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}

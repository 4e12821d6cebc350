// The filesystems bench:fs compares, each set up and torn down by the harness itself: a local directory (the
// limit), bindfs --multithreaded (a C FUSE passthrough: the FUSE ceiling), sshfs over loopback to a throwaway sshd
// (a network filesystem inside one host) and XenFS guest mounts. Every process is stopped by PID and every mount
// unmounted by path; a peer that cannot start says why and is left out of the results.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMountPoint } from '../core/frontend/fuse-mount.ts';
import { Dom0 } from '../test/helpers/dom0.ts';
import { waitFor } from '../test/helpers/fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Mounted {
  /** Where the benchmark reads and writes. */
  dir: string;
  /** Processes whose memory (PSS) counts against this filesystem in the memory test. */
  pids: () => number[];
}

export interface Peer {
  readonly name: string;
  /** Mounts `count` views of the shared base directory; throws with a reason when the peer is unavailable. */
  mount(base: string, work: string, count: number): Promise<Mounted[]>;
  teardown(): Promise<void>;
}

/**
 * Stops a child by PID (SIGTERM: FUSE daemons unmount themselves on it) and waits for it; a mount it served is
 * then unmounted lazily if it is still there.
 */
async function stopChild(child: ChildProcess, mountpoint?: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (mountpoint && isMountPoint(mountpoint)) spawnSync('umount', ['-l', mountpoint]);
}

/** The JSON line with "type":"ready" a mounting child prints; the fields bench:fs checks. */
export interface ReadyLine {
  type: 'ready';
  /** `xenfs guest` only: the front end serving the mount, and whether the kernel agreed to passthrough. */
  frontend?: string;
  passthrough?: boolean;
}

/** Waits for the ready line a mounting child prints on stdout once its mount is up. */
function readyLine(child: ChildProcess, what: string): Promise<ReadyLine> {
  return new Promise<ReadyLine>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('"ready"')) continue;
        try {
          const parsed = JSON.parse(line) as { type?: unknown };
          if (parsed.type === 'ready') resolve(parsed as ReadyLine);
        } catch {
          // a line that is not the ready record
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before mounting`)));
  });
}

/** A mount process is ready once its mount point is mounted (for daemons that print nothing). */
const whenMounted = (what: string, ms: number) => (_child: ChildProcess, dir: string): Promise<void> =>
  waitFor(() => isMountPoint(dir), ms, `${what} on ${dir}`);

/** A mount process is ready once it prints its ready line, which `check` may refuse by throwing. */
const whenReady = (what: string, check: (ready: ReadyLine) => void = () => {}) =>
  async (child: ChildProcess): Promise<void> => check(await readyLine(child, what));

/** One peer's mount processes, each serving its own directory under `work`; stopped by PID, unmounted by path. */
class MountProcesses {
  readonly #children: Array<{ child: ChildProcess; dir: string }> = [];

  /**
   * Starts `count` of them, one at a time, each once the one before is ready. `extraPids(i)` are processes besides
   * mount i's own whose memory counts against it (a server they share, counted once).
   */
  async start(
    work: string, prefix: string, count: number, launch: (dir: string, i: number) => ChildProcess,
    ready: (child: ChildProcess, dir: string) => Promise<void>, extraPids: (i: number) => number[] = () => [],
  ): Promise<Mounted[]> {
    const out: Mounted[] = [];
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `${prefix}-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      const child = launch(dir, i);
      this.#children.push({ child, dir });
      await ready(child, dir);
      out.push({ dir, pids: () => [child.pid ?? 0, ...extraPids(i)].filter((p) => p > 0) });
    }
    return out;
  }

  async stop(): Promise<void> {
    for (const { child, dir } of this.#children.splice(0)) await stopChild(child, dir);
  }
}

function need(cmd: string): void {
  if (spawnSync('which', [cmd]).status !== 0) throw new Error(`${cmd} is not installed (scripts/setup-bench.sh)`);
}

export class LocalPeer implements Peer {
  readonly name = 'local';
  async mount(base: string, _work: string, count: number): Promise<Mounted[]> {
    return Array.from({ length: count }, () => ({ dir: base, pids: () => [] }));
  }
  async teardown(): Promise<void> {}
}

export class BindfsPeer implements Peer {
  readonly name = 'bindfs';
  readonly #mounts = new MountProcesses();

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    need('bindfs');
    // -f keeps bindfs in the foreground, so it is our child and stops by its PID.
    return this.#mounts.start(work, 'bindfs', count,
      (dir) => spawn('bindfs', ['-f', '--multithreaded', base, dir], { stdio: 'ignore' }),
      whenMounted('bindfs', 10_000));
  }

  async teardown(): Promise<void> {
    await this.#mounts.stop();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

export class SshfsPeer implements Peer {
  readonly name = 'sshfs';
  #sshd: ChildProcess | null = null;
  readonly #mounts = new MountProcesses();

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    need('sshfs');
    need('/usr/sbin/sshd');
    const keys = path.join(work, 'ssh');
    fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
    for (const k of ['host', 'client']) {
      if (!fs.existsSync(path.join(keys, k))) spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(keys, k)]);
    }
    fs.copyFileSync(path.join(keys, 'client.pub'), path.join(keys, 'authorized_keys'));
    fs.chmodSync(path.join(keys, 'authorized_keys'), 0o600);
    const port = await freePort();
    const config = path.join(keys, 'sshd_config');
    fs.writeFileSync(config, [
      `ListenAddress 127.0.0.1`, `Port ${port}`, `HostKey ${path.join(keys, 'host')}`,
      `AuthorizedKeysFile ${path.join(keys, 'authorized_keys')}`, 'PasswordAuthentication no',
      'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', `PidFile ${path.join(keys, 'sshd.pid')}`,
      'Subsystem sftp internal-sftp', '',
    ].join('\n'));
    fs.mkdirSync('/run/sshd', { recursive: true });
    // -D: no daemonising, so the throwaway sshd is our child; -e: its log goes to stderr.
    this.#sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: 'ignore' });
    await waitFor(() => spawnSync('ss', ['-ltn', `sport = :${port}`]).stdout.toString().includes(`:${port}`), 10_000, 'sshd');
    return this.#mounts.start(work, 'sshfs', count, (dir) => spawn('sshfs', ['-f', '-p', String(port), '-o', [
      `IdentityFile=${path.join(keys, 'client')}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null',
      'LogLevel=ERROR',
    ].join(','), `root@127.0.0.1:${base}`, dir], { stdio: 'ignore' }), whenMounted('sshfs', 15_000));
  }

  async teardown(): Promise<void> {
    await this.#mounts.stop();
    if (this.#sshd) await stopChild(this.#sshd);
    this.#sshd = null;
  }
}

/**
 * The front end a XenFS row runs: fuse-native (libfuse2, every byte through dom0), or the native one with kernel
 * passthrough, which a row only measures when the kernel agreed to it.
 */
export type XenfsFrontend = 'fuse-native' | 'native-passthrough';

/** Throws unless a guest's ready line says it is served by `frontend`. */
function checkFrontend(frontend: XenfsFrontend, ready: ReadyLine): void {
  const want = frontend === 'fuse-native' ? 'fuse-native' : 'native';
  if (ready.frontend !== want) throw new Error(`xenfs guest mounted with the ${ready.frontend} front end, not ${want}`);
  if (frontend === 'native-passthrough' && ready.passthrough !== true) {
    throw new Error('the kernel did not agree to FUSE passthrough (the native front end mounted without it)');
  }
}

/** XenFS: one dom0 server, and one guest domain per mount, each running `xenfs guest` as its own process. */
export class XenfsPeer implements Peer {
  readonly name: string;
  readonly #frontend: XenfsFrontend;
  readonly #args: string[];
  #dom0: Dom0 | null = null;
  readonly #guests = new MountProcesses();

  /** `extraArgs` select a cache mode, for extra rows. The front end is always named: `xenfs guest` picks one itself. */
  constructor(name: string, frontend: XenfsFrontend, extraArgs: string[] = []) {
    this.name = name;
    this.#frontend = frontend;
    this.#args = ['--frontend', frontend === 'fuse-native' ? 'fuse-native' : 'native', ...extraArgs];
  }

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    const secretFile = path.join(work, 'guest.secret');
    fs.writeFileSync(secretFile, 'bench-secret', { mode: 0o600 });
    const guests = Array.from({ length: count }, (_, i) => ({
      name: `bench-${i}`,
      secret: 'bench-secret',
      exports: [{ name: 'data', path: base }],
    }));
    const dom0 = await Dom0.start({ config: { guests } });
    this.#dom0 = dom0;
    return this.#guests.start(work, this.name, count, (dir, i) => spawn(process.execPath, [
      '--import', 'tsx', path.join(ROOT, 'core', 'cli', 'main.ts'), 'guest', `bench-${i}`, '--mount', dir,
      '--control', dom0.controlPath, '--secret-file', secretFile, ...this.#args,
    ], { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT }), whenReady('xenfs guest', (r) => checkFrontend(this.#frontend, r)),
    // dom0 serves every guest: its memory counts once, with the first.
    (i) => (i === 0 && dom0.pid ? [dom0.pid] : []));
  }

  async teardown(): Promise<void> {
    await this.#guests.stop();
    await this.#dom0?.cleanup();
    this.#dom0 = null;
  }
}

/**
 * fuse-native itself, with nothing behind it: bench/fuse-native-passthrough.ts over the base directory, mounted as
 * a XenFS guest mount is: the same front end doing the work itself, with no ring, measured in the same run.
 */
export class FuseNativePeer implements Peer {
  readonly name = 'fuse-native';
  readonly #mounts = new MountProcesses();

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    return this.#mounts.start(work, 'fuse-native', count, (dir) => spawn(process.execPath, [
      '--import', 'tsx', path.join(ROOT, 'bench', 'fuse-native-passthrough.ts'), base, dir,
    ], { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT }), whenReady('fuse-native passthrough'));
  }

  async teardown(): Promise<void> {
    await this.#mounts.stop();
  }
}

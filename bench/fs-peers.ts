// The filesystems bench:fs compares, each set up and torn down by the harness itself: a local directory (the
// limit), bindfs --multithreaded (a C FUSE passthrough: the FUSE ceiling), sshfs over loopback to a throwaway sshd
// (a network filesystem inside one host) and XenFS guest mounts. Every process is stopped by PID and every mount
// unmounted by path; a peer that cannot start says why and is left out of the results.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dom0 } from '../test/helpers/dom0.ts';

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

function isMounted(dir: string): boolean {
  const target = path.resolve(dir);
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === target);
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
  if (mountpoint && isMounted(mountpoint)) spawnSync('umount', ['-l', mountpoint]);
}

/** Waits for the JSON line with "type":"ready" a mounting child prints on stdout once its mount is up. */
function readyLine(child: ChildProcess, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('"ready"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before mounting`)));
  });
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
  readonly #children: Array<{ child: ChildProcess; dir: string }> = [];

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    need('bindfs');
    const out: Mounted[] = [];
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `bindfs-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      // -f keeps bindfs in the foreground, so it is our child and stops by its PID.
      const child = spawn('bindfs', ['-f', '--multithreaded', base, dir], { stdio: 'ignore' });
      this.#children.push({ child, dir });
      await waitFor(() => isMounted(dir), 10_000, `bindfs on ${dir}`);
      out.push({ dir, pids: () => (child.pid ? [child.pid] : []) });
    }
    return out;
  }

  async teardown(): Promise<void> {
    for (const { child, dir } of this.#children.splice(0)) await stopChild(child, dir);
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
  readonly #mounts: Array<{ child: ChildProcess; dir: string }> = [];

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
    const out: Mounted[] = [];
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `sshfs-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      const child = spawn('sshfs', ['-f', '-p', String(port), '-o', [
        `IdentityFile=${path.join(keys, 'client')}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null',
        'LogLevel=ERROR',
      ].join(','), `root@127.0.0.1:${base}`, dir], { stdio: 'ignore' });
      this.#mounts.push({ child, dir });
      await waitFor(() => isMounted(dir), 15_000, `sshfs on ${dir}`);
      out.push({ dir, pids: () => (child.pid ? [child.pid] : []) });
    }
    return out;
  }

  async teardown(): Promise<void> {
    for (const { child, dir } of this.#mounts.splice(0)) await stopChild(child, dir);
    if (this.#sshd) await stopChild(this.#sshd);
    this.#sshd = null;
  }
}

/** XenFS: one dom0 server, and one guest domain per mount, each running `xenfs guest` as its own process. */
export class XenfsPeer implements Peer {
  readonly name: string;
  readonly #args: string[];
  #dom0: Dom0 | null = null;
  readonly #guests: Array<{ child: ChildProcess; dir: string }> = [];

  /** `extraArgs` select a front end or cache mode, for extra rows such as a passthrough front end later. */
  constructor(name = 'xenfs', extraArgs: string[] = []) {
    this.name = name;
    this.#args = extraArgs;
  }

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    const secretFile = path.join(work, 'guest.secret');
    fs.writeFileSync(secretFile, 'bench-secret', { mode: 0o600 });
    const guests = Array.from({ length: count }, (_, i) => ({
      name: `bench-${i}`,
      secret: 'bench-secret',
      exports: [{ name: 'data', path: base }],
    }));
    this.#dom0 = await Dom0.start({ config: { guests } });
    const out: Mounted[] = [];
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `${this.name}-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      const child = spawn(process.execPath, [
        '--import', 'tsx', path.join(ROOT, 'core', 'cli', 'main.ts'), 'guest', `bench-${i}`, '--mount', dir,
        '--control', this.#dom0.controlPath, '--secret-file', secretFile, ...this.#args,
      ], { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
      this.#guests.push({ child, dir });
      await readyLine(child, 'xenfs guest');
      const dom0 = this.#dom0;
      out.push({ dir, pids: () => [child.pid ?? 0, ...(i === 0 && dom0.pid ? [dom0.pid] : [])].filter((p) => p > 0) });
    }
    return out;
  }

  async teardown(): Promise<void> {
    for (const { child, dir } of this.#guests.splice(0)) await stopChild(child, dir);
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
  readonly #children: Array<{ child: ChildProcess; dir: string }> = [];

  async mount(base: string, work: string, count: number): Promise<Mounted[]> {
    const out: Mounted[] = [];
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `fuse-native-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      const child = spawn(process.execPath, [
        '--import', 'tsx', path.join(ROOT, 'bench', 'fuse-native-passthrough.ts'), base, dir,
      ], { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
      this.#children.push({ child, dir });
      await readyLine(child, 'fuse-native passthrough');
      out.push({ dir, pids: () => (child.pid ? [child.pid] : []) });
    }
    return out;
  }

  async teardown(): Promise<void> {
    for (const { child, dir } of this.#children.splice(0)) await stopChild(child, dir);
  }
}

// Guest front ends mounted through FUSE, for tests: `xenfs guest NAME --mount DIR` runs as a child process (a
// process must never make synchronous calls on a mount it serves itself), and the test waits for its ready line.
// Cleanup is by PID and by path: the child is killed if still alive, and its mount point lazily unmounted if a
// mount is still there (a killed front end leaves a dead mount that answers ENOTCONN).
//
// Tests should reach mounts through fs/promises: a call that hangs then blocks a thread-pool thread, not the
// test's event loop, so the test's timeout still fires and its cleanup (which kills the server) still runs.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dom0 } from './dom0.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'core', 'cli', 'main.ts');

/** Mount points in /proc/mounts (field 2, octal escapes undone). */
export function mountPoints(): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').flatMap((line) => {
    const field = line.split(' ')[1];
    return field === undefined ? [] : [field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))];
  });
}

export function isMounted(dir: string): boolean {
  return mountPoints().includes(path.resolve(dir));
}

/** The /proc/mounts line of `dir`, or undefined. */
export function mountLine(dir: string): string | undefined {
  const target = path.resolve(dir);
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === target);
}

/** Lazily unmount `dir` if something is mounted there (a dead FUSE mount included). */
export function lazyUnmount(dir: string): void {
  if (isMounted(dir)) spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
}

export interface GuestMountOptions {
  dom0: Pick<Dom0, 'controlPath'>;
  domain: string;
  /** Handed over in XENFS_SECRET, or in a file with `secretFile: true`. */
  secret: string;
  secretFile?: boolean;
  /** Default: a fresh directory under the OS temp dir, removed by cleanup(). */
  dir?: string;
  exportName?: string;
  waitMs?: number;
  cache?: 'none' | 'auto';
  nameCacheMs?: number;
  /** --frontend: the CLI's default (auto) when unset. */
  frontend?: 'auto' | 'native' | 'fuse-native';
  /** --no-passthrough when false. */
  passthrough?: boolean;
  /** How long to wait for the ready line. Default 20 s. */
  readyMs?: number;
}

export interface Ready {
  type: 'ready';
  domain: string;
  export: string;
  mount: string;
  cache: string;
  frontend: 'native' | 'fuse-native';
  passthrough: boolean;
  pid: number;
}

// Every front end this process started, so an exit without cleanup still kills them and frees their mounts.
const started = new Set<GuestMount>();
process.once('exit', () => {
  for (const m of started) m.cleanupSync();
});

/** One `xenfs guest` child process and its mount. */
export class GuestMount {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly ready: Ready;
  readonly #ownsDir: boolean;
  readonly #stderr: string[];
  readonly #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #secretFile: string | null;

  private constructor(
    dir: string, child: ChildProcess, ready: Ready, ownsDir: boolean, stderr: string[],
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>, secretFile: string | null,
  ) {
    this.dir = dir;
    this.child = child;
    this.ready = ready;
    this.#ownsDir = ownsDir;
    this.#stderr = stderr;
    this.#exited = exited;
    this.#secretFile = secretFile;
  }

  static async start(opts: GuestMountOptions): Promise<GuestMount> {
    const ownsDir = opts.dir === undefined;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `xenfs-mnt-${opts.domain}-`));
    const args = [MAIN, 'guest', opts.domain, '--mount', dir, '--control', opts.dom0.controlPath];
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.XENFS_SECRET;
    let secretFile: string | null = null;
    if (opts.secretFile === true) {
      secretFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-secret-')), 'secret');
      fs.writeFileSync(secretFile, `${opts.secret}\n`, { mode: 0o600 });
      args.push('--secret-file', secretFile);
    } else {
      env.XENFS_SECRET = opts.secret;
    }
    if (opts.exportName !== undefined) args.push('--export', opts.exportName);
    if (opts.waitMs !== undefined) args.push('--wait-ms', String(opts.waitMs));
    if (opts.cache !== undefined) args.push('--cache', opts.cache);
    if (opts.nameCacheMs !== undefined) args.push('--name-cache-ms', String(opts.nameCacheMs));
    if (opts.frontend !== undefined) args.push('--frontend', opts.frontend);
    if (opts.passthrough === false) args.push('--no-passthrough');
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const ready = await new Promise<Ready>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no ready line within ${opts.readyMs ?? 20_000} ms: ${stderr.join('')}`)),
        opts.readyMs ?? 20_000);
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line === undefined || !out.includes('\n')) return;
        clearTimeout(timer);
        resolve(JSON.parse(line) as Ready);
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`xenfs guest exited (${code ?? signal}) before it was ready: ${stderr.join('')}`));
      });
    }).catch((err: unknown) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      lazyUnmount(dir);
      throw err;
    });
    const mount = new GuestMount(dir, child, ready, ownsDir, stderr, exited, secretFile);
    started.add(mount);
    return mount;
  }

  get pid(): number {
    return this.ready.pid;
  }

  /** What the front end wrote on stderr so far (JSON log lines). */
  logs(): string {
    return this.#stderr.join('');
  }

  /** Send `signal` and wait for the process to exit; resolves with how it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`xenfs guest did not exit within ${ms} ms of ${signal}`)), ms);
    });
    try {
      return await Promise.race([this.#exited, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kill the child by PID if it lives, wait for it, and clear its mount point. Safe to call more than once. */
  async cleanup(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.#exited;
    }
    this.cleanupSync();
  }

  /** cleanup() without waiting: for process exit. */
  cleanupSync(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    lazyUnmount(this.dir);
    // Never recursive: were anything still mounted here, that would delete the export's files through it.
    if (this.#ownsDir && !isMounted(this.dir)) {
      try {
        fs.rmdirSync(this.dir);
      } catch {
        // already gone, or a test left files in the bare directory: leave them for a human
      }
    }
    if (this.#secretFile !== null) fs.rmSync(path.dirname(this.#secretFile), { recursive: true, force: true });
    started.delete(this);
  }
}

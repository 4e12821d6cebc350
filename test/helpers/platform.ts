// `xenfs up` as a child process, for tests of the whole dom0: a temporary state directory and config, the ready
// line, `xenfs status --json`, and what the test service `recorder` (test/helpers/services/recorder) handled.
// Everything started is stopped by PID in close(): the platform, and its private redis-server if the platform
// died without stopping it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { EventLog } from '../../core/events/event-log.ts';
import type { ChangeEvent } from '../../core/events/change-event.ts';
import type { PlatformStatus } from '../../core/cli/platform-status.ts';

const MAIN = fileURLToPathSafe(new URL('../../core/cli/main.ts', import.meta.url));
export const RECORDER = fileURLToPathSafe(new URL('./services/recorder/index.ts', import.meta.url));

function fileURLToPathSafe(u: URL): string {
  return decodeURIComponent(u.pathname);
}

export interface Handled {
  seq: number;
  origin: string;
  kind: string;
  guest: string;
  export: string;
  path: string;
  pid: number;
  at: number;
  sense: number;
}

export interface UpOptions {
  /** YAML text of the config, written to <dir>/xenfs.yaml; relative paths resolve against <dir>. */
  config: string;
  /** Directories to create under <dir> first (exports). */
  dirs?: string[];
  dir?: string;
}

export class Up {
  readonly dir: string;
  readonly configFile: string;
  child: ChildProcess | null = null;
  stderr = '';
  #redisPids = new Set<number>();

  constructor(opts: UpOptions) {
    this.dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xup-'));
    for (const d of opts.dirs ?? []) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    this.configFile = path.join(this.dir, 'xenfs.yaml');
    fs.writeFileSync(this.configFile, opts.config);
  }

  get controlPath(): string {
    return path.join(this.dir, 'state', 'control.sock');
  }

  path(...p: string[]): string {
    return path.join(this.dir, ...p);
  }

  /** Starts `xenfs up` and resolves with its ready line; rejects with its stderr if it exits first. */
  async start(timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'up', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`xenfs up not ready in ${timeoutMs} ms:\n${this.stderr}`)), timeoutMs);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as Record<string, unknown>);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`xenfs up exited ${code}:\n${this.stderr}`));
      });
    });
    const st = await this.status();
    if (st.redis.pid) this.#redisPids.add(st.redis.pid);
    return ready;
  }

  async status(): Promise<PlatformStatus> {
    const { stdout } = await promisify(execFile)(process.execPath,
      ['--import', 'tsx', MAIN, 'status', '--config', this.configFile, '--json'], { timeout: 20_000 });
    const st = JSON.parse(stdout) as PlatformStatus;
    if (st.redis.pid) this.#redisPids.add(st.redis.pid);
    return st;
  }

  /** SIGTERM and the exit code (a clean, ordered shutdown exits 0). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    this.child = null;
    return code;
  }

  /** Every event the recorder was handed, in the order handled. */
  handled(): Handled[] {
    const file = this.path('state', 'services', 'recorder', 'state.db');
    if (!fs.existsSync(file)) return [];
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT * FROM handled ORDER BY rowid').all() as Handled[];
    } finally {
      db.close();
    }
  }

  /** The files the recorder believes the export holds. */
  recordedFiles(guest: string, exp: string): string[] {
    const db = new Database(this.path('state', 'services', 'recorder', 'state.db'), { readonly: true });
    try {
      return (db.prepare('SELECT path FROM files WHERE guest = ? AND export = ? ORDER BY path').all(guest, exp) as Array<{ path: string }>)
        .map((r) => r.path);
    } finally {
      db.close();
    }
  }

  /** The event log's contents; only while no platform runs (the log has one owner). */
  loggedEvents(): ChangeEvent[] {
    const log = new EventLog(this.path('state', 'events'));
    try {
      const r = log.reader(1);
      const all: ChangeEvent[] = [];
      for (let got = r.read(10_000); got.length > 0; got = r.read(10_000)) all.push(...got);
      r.close();
      return all;
    } finally {
      log.close();
    }
  }

  /** Stops the platform (SIGKILL if it hangs), any redis-server it left, and removes the directory. */
  async close(): Promise<void> {
    await this.stop('SIGTERM', 15_000).catch(() => {});
    for (const pid of this.#redisPids) {
      try {
        if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server')) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Files under `root`, relative, sorted (what the recorder's `files` should converge to). */
export function filesOnDisk(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk('');
  return out.sort();
}

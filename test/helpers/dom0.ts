// Runs a real dom0 server process for tests and benchmarks, in a private temporary directory, and cleans it all
// up: the process by PID, the directory by path.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'core', 'cli', 'main.ts');

export interface Dom0Options {
  /** The config's `guests` and friends; `stateDir` is filled in. Paths may be relative to `dir`. */
  config: Record<string, unknown>;
  /** A directory to use (and not delete); default a fresh temporary one, deleted by cleanup(). */
  dir?: string;
}

export class Dom0 {
  readonly dir: string;
  readonly configPath: string;
  readonly stateDir: string;
  readonly controlPath: string;
  #child: ChildProcess | null = null;
  #logs: string[] = [];
  #ownsDir: boolean;
  tcpPort: number | null = null;

  private constructor(opts: Dom0Options) {
    this.#ownsDir = opts.dir === undefined;
    this.dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-dom0-'));
    // Traversable (not listable), as /var/lib is: a sandboxed guest's front end, unprivileged, reaches the
    // control socket in the state directory.
    if (opts.dir === undefined) fs.chmodSync(this.dir, 0o711);
    this.stateDir = path.join(this.dir, 'state');
    this.controlPath = path.join(this.stateDir, 'control.sock');
    this.configPath = path.join(this.dir, 'xenfs.json');
    fs.writeFileSync(this.configPath, JSON.stringify({ stateDir: this.stateDir, ...opts.config }, null, 2));
  }

  static async start(opts: Dom0Options): Promise<Dom0> {
    const d = new Dom0(opts);
    await d.spawn();
    return d;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Log lines the server printed, parsed. */
  logs(): Array<Record<string, unknown>> {
    return this.#logs.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [{ raw: l }];
      }
    });
  }

  async spawn(): Promise<void> {
    const child = fork(MAIN, ['server', '--config', this.configPath], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.#child = child;
    let buf = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      this.#logs.push(...lines.filter((l) => l.length > 0));
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dom0 did not start: ${this.#logs.join('\n')}`)), 30_000);
      child.once('message', (m: { type?: string; tcpPort?: number | null }) => {
        clearTimeout(timer);
        this.tcpPort = m.tcpPort ?? null;
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dom0 exited with ${code}: ${this.#logs.join('\n')}`));
      });
    });
  }

  /** Stops the server with `signal` and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
  }

  async restart(): Promise<void> {
    await this.stop('SIGKILL');
    await this.spawn();
  }

  /** CPU seconds the server process has used (user + system), from /proc. */
  cpuSeconds(): number {
    const pid = this.#child?.pid;
    if (!pid) return 0;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on Linux
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (this.#ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

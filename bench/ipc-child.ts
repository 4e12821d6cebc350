// A benchmark's helper process driven over Node's IPC channel: the parent sends commands and awaits their
// replies; the child answers them in order of arrival. Both sides live here so the message shapes cannot drift.
// A child whose parent goes away (its channel closes) exits at once: a bench that dies must not leave
// producers writing.
import { spawn, type ChildProcess } from 'node:child_process';

/** A command: `cmd` names it, the other fields are its arguments (JSON-serialisable). */
export interface Command {
  cmd: string;
  [arg: string]: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** The parent's handle on one helper process. It is stopped by its PID (SIGTERM, then SIGKILL) in stop(). */
export class IpcChild {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #ready: Promise<Record<string, unknown>>;
  readonly #exited: Promise<void>;
  #next = 1;
  #exitedWith: string | null = null;

  /** Runs `script` (TypeScript, through tsx) with `args`; its stdout is discarded, its stderr is ours. */
  constructor(name: string, script: string, args: string[]) {
    this.name = name;
    this.#child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exitedWith = signal ?? `code ${code}`;
        for (const w of this.#waiting.values()) w.reject(new Error(`${name} exited (${this.#exitedWith})`));
        this.#waiting.clear();
        resolve();
      });
    });
    this.#ready = new Promise((resolve, reject) => {
      this.#child.once('message', (m) => resolve(m as Record<string, unknown>));
      void this.#exited.then(() => reject(new Error(`${name} exited (${this.#exitedWith}) before it was ready`)));
    });
    this.#child.on('message', (m: unknown) => {
      const r = m as Reply;
      const w = this.#waiting.get(r.id);
      if (!w) return;
      this.#waiting.delete(r.id);
      if (r.ok) w.resolve(r.result);
      else w.reject(new Error(`${name}: ${r.error ?? 'failed'}`));
    });
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  /** The child's first message (it sends one once it is set up); rejects if it exits first or after `ms`. */
  ready(ms = 30_000): Promise<Record<string, unknown>> {
    return withTimeout(this.#ready, ms, `${this.name} ready`);
  }

  /** Sends `c`; resolves with the child's result, rejects with its error (or after `ms`). */
  request<T>(c: Command, ms = 60_000): Promise<T> {
    if (this.#exitedWith !== null) return Promise.reject(new Error(`${this.name} exited (${this.#exitedWith})`));
    const id = this.#next++;
    const reply = new Promise<unknown>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    this.#child.send({ ...c, id });
    return withTimeout(reply, ms, `${this.name} ${c.cmd}`) as Promise<T>;
  }

  /** SIGTERM by PID, SIGKILL after `ms`; resolves once it has exited. Idempotent. */
  async stop(ms = 5000): Promise<void> {
    if (this.#exitedWith === null) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), ms);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The child's side: answers each command with `handlers[cmd]`'s result (or its error), after sending `ready`
 * as its first message. Exits when the parent goes away, after `onExit` (also run on SIGTERM and SIGINT).
 */
export function serveParent(
  handlers: Record<string, (c: Command) => unknown>, ready: Record<string, unknown>, onExit: () => Promise<void>,
): void {
  const sendRaw = process.send?.bind(process);
  if (!sendRaw) throw new Error('not started with an IPC channel (run it through IpcChild)');
  // A reply to a parent that has gone has no one to read it (and would throw).
  const send = (m: unknown): void => {
    if (process.connected) sendRaw(m);
  };
  let exiting = false;
  const exit = (code: number): void => {
    if (exiting) return;
    exiting = true;
    void onExit().finally(() => process.exit(code));
  };
  process.on('message', (m: unknown) => {
    const c = m as Command & { id: number };
    const handler = handlers[c.cmd];
    void (async () => {
      try {
        if (!handler) throw new Error(`unknown command ${c.cmd}`);
        const result = await handler(c);
        send({ id: c.id, ok: true, result } satisfies Reply);
      } catch (err) {
        send({ id: c.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
      }
    })();
  });
  process.on('disconnect', () => exit(0));
  process.once('SIGTERM', () => exit(0));
  process.once('SIGINT', () => exit(130));
  send(ready);
}

/**
 * The state a producer child keeps between the parent's commands: one run at a time, its operations and
 * failures counted, `stopping` for its loops to watch, and stop() handing back the counts and resetting them.
 */
export class ProducerRun {
  stopping = false;
  #running: Promise<unknown> | null = null;
  #ops = 0;
  #errors = 0;
  #firstError: string | null = null;

  ok(n = 1): void {
    this.#ops += n;
  }

  failed(err: unknown): void {
    this.#errors++;
    this.#firstError ??= err instanceof Error ? err.message : String(err);
  }

  start(run: () => Promise<unknown>): void {
    if (this.#running) throw new Error('already producing; stop first');
    this.stopping = false;
    this.#running = run();
  }

  async stop(): Promise<{ ops: number; errors: number; firstError: string | null }> {
    this.stopping = true;
    await this.#running;
    this.#running = null;
    const result = { ops: this.#ops, errors: this.#errors, firstError: this.#firstError };
    this.#ops = 0;
    this.#errors = 0;
    this.#firstError = null;
    return result;
  }
}

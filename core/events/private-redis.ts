// The private redis-server a single host runs for its event queues: started and owned by XenFS, in a directory
// of its own, reachable only through a UNIX socket only its owner may open. Events in Redis must survive a
// crash of either side, so it writes an append-only file (fsync once a second) instead of snapshots.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ProcessError } from '../errors.ts';
import { stderrLogger, type Logger } from '../util/log.ts';
import type { RedisSocketTarget } from './redis-options.ts';

export const DEFAULT_REDIS_BINARY = '/usr/bin/redis-server';

/** A UNIX socket path is at most 107 bytes on Linux (sun_path holds 108 with the NUL). */
const MAX_SOCKET_PATH = 107;
const POLL_MS = 20;
const LOG_TAIL_LINES = 15;

export interface PrivateRedisOptions {
  /**
   * Its directory, created (mode 0700) if missing: redis.conf, redis.sock, redis.pid, redis.log and the
   * append-only files (appendonlydir/). One PrivateRedis per directory at a time.
   */
  dir: string;
  /** The redis-server to run; default DEFAULT_REDIS_BINARY. */
  binary?: string;
  logger?: Logger;
  /** How long start() waits for PING to answer; default 10 s. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL; default 10 s. */
  stopTimeoutMs?: number;
}

export interface RedisExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** False when it exited without stop() or kill() asking: a crash, or someone else's signal. */
  expected: boolean;
}

interface PrivateRedisEvents {
  exit: [RedisExit];
}

/** Quotes a value for redis.conf (its parser takes "…" with \" and \\ escapes). */
function confValue(v: string): string {
  if (/\p{Cc}/u.test(v)) throw new ProcessError('redis-server', `cannot put ${JSON.stringify(v)} in redis.conf: control characters`);
  return `"${v.replace(/[\\"]/g, '\\$&')}"`;
}

/** Whether `pid` is a live process (a zombie is not: it only waits to be reaped). */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may itself contain ') '.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One PING over the socket: true on +PONG; false on no connection, -LOADING and the like, or no answer in time. */
function ping(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath);
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      reply += d.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    sock.on('error', () => done(false));
  });
}

/**
 * A redis-server owned by this process. start() runs it (first stopping one a crashed earlier owner of the same
 * directory left running) and resolves once it answers PING; stop() shuts it down cleanly (SIGTERM: redis
 * fsyncs its append-only file and exits), SIGKILL after stopTimeoutMs. Emits 'exit' whenever it exits.
 */
export class PrivateRedis extends EventEmitter<PrivateRedisEvents> {
  readonly dir: string;
  readonly binary: string;
  readonly socketPath: string;
  readonly confPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  readonly #logger: Logger;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #expectExit = false;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;

  constructor(opts: PrivateRedisOptions) {
    super();
    this.dir = path.resolve(opts.dir);
    this.binary = opts.binary ?? DEFAULT_REDIS_BINARY;
    this.socketPath = path.join(this.dir, 'redis.sock');
    this.confPath = path.join(this.dir, 'redis.conf');
    this.pidPath = path.join(this.dir, 'redis.pid');
    this.logPath = path.join(this.dir, 'redis.log');
    this.#logger = opts.logger ?? stderrLogger;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 10_000;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  }

  /** How clients reach it. */
  get target(): RedisSocketTarget {
    return { path: this.socketPath };
  }

  /** The running server's PID, or null. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts it, unless it is running; resolves once it answers PING. Throws ProcessError with its log's tail. */
  start(): Promise<void> {
    if (this.#child) return this.#starting ?? Promise.resolve();
    this.#starting = this.#start().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH) {
      throw new ProcessError(this.binary, `socket path ${this.socketPath} is longer than ${MAX_SOCKET_PATH} bytes; choose a shorter directory`);
    }
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await this.#stopStale();
    fs.writeFileSync(this.confPath, this.#config());
    const log = fs.openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      // Its stdout and stderr go to its log too: what it says before it opens the log (a config error) is
      // exactly what start()'s error has to show.
      child = spawn(this.binary, [this.confPath], { stdio: ['ignore', log, log], cwd: this.dir });
    } finally {
      fs.closeSync(log);
    }
    this.#child = child;
    this.#expectExit = false;
    // Filled in by the child's handlers while start() polls below.
    const early: { error: Error | null; exit: RedisExit | null } = { error: null, exit: null };
    this.#exited = new Promise((resolve) => {
      let settled = false;
      const exited = (exit: RedisExit): void => {
        if (settled) return;
        settled = true;
        early.exit = exit;
        this.#onExit(child, exit, resolve);
      };
      child.once('error', (err) => {
        early.error = err;
        // A program that cannot be executed at all gets no PID and no 'exit'.
        if (child.pid === undefined) exited({ code: null, signal: null, expected: true });
      });
      child.once('exit', (code, signal) => exited({ code, signal, expected: this.#expectExit }));
    });
    if (child.pid !== undefined) fs.writeFileSync(this.pidPath, `${child.pid}\n`);
    const deadline = Date.now() + this.#startTimeoutMs;
    for (;;) {
      if (early.error !== null || early.exit !== null) {
        const why = early.error !== null
          ? `cannot run ${this.binary}: ${early.error.message}`
          : `${this.binary} exited (${describeExit(early.exit as RedisExit)}) before answering PING`;
        throw new ProcessError(this.binary, why, { logTail: this.#logTail(), ...(early.error ? { cause: early.error } : {}) });
      }
      if (await ping(this.socketPath, 1000)) break;
      if (Date.now() > deadline) {
        await this.#terminate('SIGKILL');
        throw new ProcessError(this.binary, `redis-server did not answer PING on ${this.socketPath} within ${this.#startTimeoutMs} ms`, {
          logTail: this.#logTail(),
        });
      }
      await sleep(POLL_MS);
    }
    this.#logger.log('info', 'private redis started', { pid: child.pid, socket: this.socketPath });
  }

  #onExit(child: ChildProcess, exit: RedisExit, resolve: () => void): void {
    if (this.#child === child) this.#child = null;
    if (!exit.expected && child.pid !== undefined) {
      this.#logger.log('error', 'private redis exited unexpectedly', {
        pid: child.pid, code: exit.code, signal: exit.signal, log: this.#logTail(),
      });
    }
    this.emit('exit', exit);
    resolve();
  }

  /**
   * Shuts it down: SIGTERM (redis flushes its append-only file and removes its socket and pid file), then
   * SIGKILL if it is still there after stopTimeoutMs. Resolves once it has exited; idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#starting?.catch(() => {});
      await this.#terminate('SIGTERM');
    })().finally(() => {
      this.#stopping = null;
    });
    return this.#stopping;
  }

  /** SIGKILL, as a crash would: nothing is flushed (the last second of writes may be lost). Resolves on exit. */
  async kill(): Promise<void> {
    await this.#terminate('SIGKILL');
  }

  async #terminate(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#expectExit = true;
    child.kill(signal);
    const timer = signal === 'SIGTERM' ? setTimeout(() => child.kill('SIGKILL'), this.#stopTimeoutMs) : undefined;
    await this.#exited;
    clearTimeout(timer);
  }

  /**
   * Stops a redis-server that an earlier owner of this directory started and left running (it crashed, or was
   * killed, before stopping it): its pid file names a live process that serves our socket. Any other process
   * the pid file may name now (PIDs are reused) is left alone.
   */
  async #stopStale(): Promise<void> {
    let pid: number;
    try {
      pid = Number.parseInt(fs.readFileSync(this.pidPath, 'utf8'), 10);
    } catch {
      return;
    }
    if (!Number.isSafeInteger(pid) || pid <= 1 || pid === process.pid || !this.#isOurs(pid)) return;
    this.#logger.log('warn', 'stopping a redis-server left running by an earlier owner', { pid, dir: this.dir });
    const signalIt = (sig: NodeJS.Signals): void => {
      try {
        process.kill(pid, sig);
      } catch {
        // gone already
      }
    };
    signalIt('SIGTERM');
    const deadline = Date.now() + this.#stopTimeoutMs;
    while (isAlive(pid)) {
      if (Date.now() > deadline) {
        signalIt('SIGKILL');
        await sleep(POLL_MS * 5);
        if (isAlive(pid)) throw new ProcessError(this.binary, `stale redis-server ${pid} (in ${this.dir}) does not exit`);
      }
      await sleep(POLL_MS);
    }
  }

  /** Whether `pid` is a live redis-server on this directory's socket or config. */
  #isOurs(pid: number): boolean {
    if (!isAlive(pid)) return false;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      // redis-server retitles itself "<binary> unixsocket:<socket>"; before it does, its argument is our config.
      const isRedis = comm.startsWith('redis-server') || path.basename(cmdline.split(' ')[0] ?? '').startsWith('redis-server');
      return isRedis && (cmdline.includes(this.socketPath) || cmdline.includes(this.confPath));
    } catch {
      return false;
    }
  }

  #config(): string {
    return [
      '# Written by XenFS (PrivateRedis) at every start; edits are lost.',
      'daemonize no',
      // No TCP at all: only processes that can open the socket (its owner, by the 0700 mode) reach it.
      'port 0',
      `unixsocket ${confValue(this.socketPath)}`,
      'unixsocketperm 700',
      `dir ${confValue(this.dir)}`,
      `pidfile ${confValue(this.pidPath)}`,
      `logfile ${confValue(this.logPath)}`,
      // Durability from the append-only file, fsynced once a second: a crash of the machine loses at most the
      // last second of queue changes. No RDB snapshots on top (they would fork the whole dataset for nothing).
      'appendonly yes',
      'appendfsync everysec',
      'save ""',
      // BullMQ's keys must never be evicted; this is Redis's default, stated because BullMQ depends on it.
      'maxmemory-policy noeviction',
      '',
    ].join('\n');
  }

  /** The last lines of redis.log ('' if there is none). */
  #logTail(): string {
    try {
      const fd = fs.openSync(this.logPath, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const len = Math.min(size, 8192);
        const buf = Buffer.alloc(len);
        fs.readSync(fd, buf, 0, len, size - len);
        return buf.toString('utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return '';
    }
  }
}

function describeExit(exit: RedisExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

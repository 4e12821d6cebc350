// A real redis-server per test file (PrivateRedis in a fresh temporary directory), change events to queue, and
// small waiting helpers. Deliberately free of the dom0 fixtures: these tests need no native addon.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { ChangeEvent } from '../../core/events/change-event.ts';
import { PrivateRedis } from '../../core/events/private-redis.ts';
import type { RedisSocketTarget } from '../../core/events/redis-options.ts';
import type { Logger, LogLevel } from '../../core/util/log.ts';

export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
}

/** A Logger that keeps what it is told, for assertions; echoes nothing. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { lines, log: (level, msg, fields = {}) => void lines.push({ level, msg, fields }) };
}

export interface TestRedis {
  redis: PrivateRedis;
  dir: string;
  target: RedisSocketTarget;
  /** A plain client for looking inside (DBSIZE, KEYS); closed by close(). */
  admin: Redis;
  /** Stops the server and removes the directory. */
  close(): Promise<void>;
}

/** A temporary directory of its own (short: a UNIX socket path must fit in 107 bytes). */
export function tempDir(prefix = 'xq-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Starts a private redis-server in a new temporary directory. */
export async function startTestRedis(logger: Logger = recordingLogger()): Promise<TestRedis> {
  const dir = tempDir();
  const redis = new PrivateRedis({ dir, logger });
  await redis.start();
  const admin = new Redis({ path: redis.socketPath, maxRetriesPerRequest: null, retryStrategy: () => 100 });
  admin.on('error', () => {});
  return {
    redis,
    dir,
    target: redis.target,
    admin,
    close: async () => {
      admin.disconnect();
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `count` valid events with seqs from `first`: a file `dir/f<seq>` each, of kind `kind`. */
export function makeEvents(first: number, count: number, kind: ChangeEvent['kind'] = 'modified'): ChangeEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    seq: first + i,
    guest: 'g1',
    export: 'home',
    kind,
    path: `dir/f${first + i}`,
    dir: false,
    size: 100 + i,
    mtime: 1_700_000_000_000.5 + i,
    ino: 1000 + first + i,
    time: Date.now(),
    origin: 'guest',
  }));
}

/** waitFor under the name these tests use. */
export { waitFor as waitUntil } from './wait.ts';

/**
 * A `defer(fn)` whose functions run after the test in reverse order of registration (node:test runs its own
 * after hooks in order): what is started last is stopped first, so a worker closes before its Redis stops.
 */
export function deferrer(t: { after(fn: () => unknown): void }): (fn: () => unknown) => void {
  const fns: Array<() => unknown> = [];
  t.after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return (fn) => void fns.push(fn);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a process with this PID exists (as anything but a zombie). */
export function processExists(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

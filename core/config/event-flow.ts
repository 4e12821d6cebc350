// The config of the change-event flow: where its Redis is (`redis`) and how events are batched and logged
// (`events`). Read by parseConfig; defaults from config/defaults.json.
import fs from 'node:fs';
import path from 'node:path';
import type { Reader } from './reader.ts';
import defaults from '../../config/defaults.json' with { type: 'json' };

export interface RedisEndpoint {
  host: string;
  port: number;
}

/**
 * Where the queues live. 'private' (no `redis` section): dom0 starts and owns a redis-server of its own, its
 * socket and data in `dir` (`<stateDir>/redis`), reachable only by dom0. The other modes point at a Redis run
 * by someone else: a UNIX socket, one server over TCP, or a cluster (workers may then run on other hosts).
 * `password` is the inline `password` or the contents of `passwordFile` (read when the config is loaded).
 */
export type RedisConfig =
  | { mode: 'private'; dir: string }
  | { mode: 'socket'; path: string; password?: string }
  | { mode: 'server'; host: string; port: number; password?: string }
  | { mode: 'cluster'; nodes: RedisEndpoint[]; password?: string };

export interface EventsConfig {
  /** Most events handed to a service in one job. */
  batchMax: number;
  /** Milliseconds the first event of a batch waits for more before the batch is published. */
  batchWindowMs: number;
  /** Bytes after which the event log starts a new segment file. */
  logSegmentBytes: number;
  /** Whether changes made on dom0 outside XenFS (in an export directory) become events too. */
  watchHost: boolean;
}

const DEFAULT_REDIS_PORT = 6379;

function readEndpoint(r: Reader, v: unknown, key: string): RedisEndpoint {
  const o = r.strictObj(v, key, ['host', 'port']);
  return { host: r.str(o.host, `${key}.host`), port: r.int(o.port ?? DEFAULT_REDIS_PORT, `${key}.port`, 1, 65535) };
}

function readPassword(r: Reader, o: Record<string, unknown>, dir: string): string | undefined {
  if (o.password !== undefined && o.passwordFile !== undefined) {
    r.fail('redis.passwordFile', 'cannot be given with redis.password: choose one');
  }
  if (o.password !== undefined) return r.str(o.password, 'redis.password');
  if (o.passwordFile === undefined) return undefined;
  const file = path.resolve(dir, r.str(o.passwordFile, 'redis.passwordFile'));
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return r.fail('redis.passwordFile', `cannot be read: ${(err as Error).message}`);
  }
  // Files written by `echo secret > file` end in a newline that is not part of the password.
  const password = text.replace(/\r?\n$/, '');
  return password.length > 0 ? password : r.fail('redis.passwordFile', `${file} is empty`);
}

/**
 * The `redis` section. Exactly one of `path`, `host` or `cluster` says which Redis; absent, dom0 runs its own
 * under `stateDir`. `dir` is the config file's directory, against which `path` and `passwordFile` resolve.
 */
export function readRedis(r: Reader, v: unknown, dir: string, stateDir: string): RedisConfig {
  if (v === undefined) return { mode: 'private', dir: path.join(stateDir, 'redis') };
  const o = r.strictObj(v, 'redis', ['path', 'host', 'port', 'cluster', 'password', 'passwordFile']);
  const given = (['path', 'host', 'cluster'] as const).filter((k) => o[k] !== undefined);
  if (given.length !== 1) {
    r.fail('redis', given.length === 0
      ? 'needs one of path (a UNIX socket), host (one server) or cluster; leave redis out to run a private one'
      : `takes one of path, host or cluster, not ${given.join(' and ')}`);
  }
  if (o.port !== undefined && o.host === undefined) r.fail('redis.port', 'is only meaningful with redis.host');
  const password = readPassword(r, o, dir);
  const auth = password === undefined ? {} : { password };
  if (o.path !== undefined) return { mode: 'socket', path: path.resolve(dir, r.str(o.path, 'redis.path')), ...auth };
  if (o.host !== undefined) return { mode: 'server', ...readEndpoint(r, { host: o.host, port: o.port }, 'redis'), ...auth };
  if (!Array.isArray(o.cluster) || o.cluster.length === 0) r.fail('redis.cluster', 'must be a non-empty array of { host, port }');
  const nodes = o.cluster.map((n: unknown, i) => readEndpoint(r, n, `redis.cluster[${i}]`));
  return { mode: 'cluster', nodes, ...auth };
}

const EVENT_RANGES: Record<Exclude<keyof EventsConfig, 'watchHost'>, [number, number]> = {
  batchMax: [1, 10000],
  batchWindowMs: [0, 10000],
  logSegmentBytes: [64 * 1024, 2 ** 32],
};

/** The `events` section; every key optional. */
export function readEvents(r: Reader, v: unknown): EventsConfig {
  const out: EventsConfig = { ...defaults.events };
  if (v === undefined) return out;
  const o = r.strictObj(v, 'events', [...Object.keys(EVENT_RANGES), 'watchHost']);
  for (const [k, [min, max]] of Object.entries(EVENT_RANGES)) {
    if (o[k] !== undefined) out[k as keyof typeof EVENT_RANGES] = r.int(o[k], `events.${k}`, min, max);
  }
  if (o.watchHost !== undefined) out.watchHost = r.bool(o.watchHost, 'events.watchHost');
  return out;
}

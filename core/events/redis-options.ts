// Where the queues' Redis is and how each side connects to it. One host runs a private redis-server on a UNIX
// socket (PrivateRedis); a larger installation points at a Redis server or a Redis Cluster elsewhere, and then
// its service workers may run on other machines. Producer and worker connections are deliberately different:
//
// - Workers (BullMQ requires it) use `maxRetriesPerRequest: null` and the offline queue: during an outage their
//   commands wait for the reconnection instead of failing, so a job finished while Redis was away is still
//   reported done once it is back.
// - Producers fail fast: `enableOfflineQueue: false` and one retry. The publisher's source of truth is the
//   durable event log; when Redis is away it must learn so at once, keep its position in the log and try
//   again later — not pile batches up in this process's memory where a crash loses them. Re-adding a batch is
//   harmless (its job id is deterministic), so "failed but actually written" costs nothing.
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '../util/log.ts';

export interface RedisEndpoint {
  host: string;
  port: number;
}

/** A Redis reached through a UNIX socket: the private instance, or any local one. */
export interface RedisSocketTarget {
  path: string;
}

export interface RedisServerTarget extends RedisEndpoint {
  password?: string;
  /** true for TLS with Node's defaults (system CAs, host name checked), or Node's TLS options. */
  tls?: boolean | TlsOptions;
}

export interface RedisClusterTarget {
  /** Seed nodes; the rest of the cluster is discovered from them. */
  cluster: RedisEndpoint[];
  password?: string;
  tls?: boolean | TlsOptions;
}

export type RedisTarget = RedisSocketTarget | RedisServerTarget | RedisClusterTarget;

/** Which side a connection serves; see the top of this file for the difference. */
export type RedisRole = 'producer' | 'worker';

/** The key prefix of every queue. */
export const QUEUE_PREFIX = 'xenfs';

/**
 * The BullMQ prefix for queues on `target`. On a cluster the prefix is a hash tag, `{xenfs}`, so that every key
 * of every queue lives in one slot: BullMQ's Lua scripts and MULTI blocks touch several keys at once (and
 * ServiceQueues.addBatches touches several queues at once), which a cluster refuses across slots. The price is
 * that the queues live on one shard; they hold events in flight, not data, so that shard stays small.
 * Producers and workers of one installation must agree, which they do by deriving it from the same target.
 */
export function queuePrefix(target: RedisTarget): string {
  return 'cluster' in target ? `{${QUEUE_PREFIX}}` : QUEUE_PREFIX;
}

/** `target` for log lines: no password. */
export function describeTarget(target: RedisTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  if ('cluster' in target) return `cluster(${target.cluster.map((n) => `${n.host}:${n.port}`).join(',')})`;
  return `${target.host}:${target.port}${target.tls ? ' (tls)' : ''}`;
}

/** Reconnect delays: quick at first (a restarted private redis is back in well under a second), then every 2 s. */
function retryDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 10), 2000);
}

function tlsOptions(tls: boolean | TlsOptions | undefined): TlsOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  return tls === true ? {} : tls;
}

/** Settings every connection of `role` gets, wherever it points. */
function roleOptions(role: RedisRole): PlainRedisOptions {
  return role === 'worker'
    ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false };
}

/** ioredis options for a single server (socket or host:port) serving `role`; `name` shows in CLIENT LIST. */
export function redisOptions(target: RedisSocketTarget | RedisServerTarget, role: RedisRole, name: string): PlainRedisOptions {
  const common: PlainRedisOptions = { ...roleOptions(role), connectionName: name, retryStrategy: retryDelay, lazyConnect: true };
  if ('path' in target) return { ...common, path: target.path };
  const tls = tlsOptions(target.tls);
  return {
    ...common,
    host: target.host,
    port: target.port,
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(tls === undefined ? {} : { tls }),
  };
}

/** ioredis Cluster options serving `role`. */
export function clusterOptions(target: RedisClusterTarget, role: RedisRole, name: string): ClusterOptions {
  const { maxRetriesPerRequest, enableOfflineQueue } = roleOptions(role);
  const tls = tlsOptions(target.tls);
  return {
    enableOfflineQueue,
    clusterRetryStrategy: retryDelay,
    lazyConnect: true,
    redisOptions: {
      // BullMQ reads a worker's maxRetriesPerRequest from here on a cluster.
      maxRetriesPerRequest,
      connectionName: name,
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(tls === undefined ? {} : { tls }),
    },
  };
}

/** Options of a client whose replies keep their RESP2 shapes (ioredis's default, and what BullMQ expects). */
type PlainRedisOptions = Omit<RedisOptions, 'replyMapping'>;

/**
 * ioredis's Redis, except that disconnect() always ends the connection. ioredis's own disconnect() leaves a
 * connection that is waiting to reconnect (status 'reconnecting') in that state for good: it never emits
 * 'end', and commands queued offline never settle. BullMQ waits for both when it closes a worker, so closing a
 * worker while Redis is down would wait for ever. Here that disconnect lets the pending attempt run instead,
 * with no retry after it: when it fails, ioredis's close handler ends the connection as it should; if Redis is
 * back and it succeeds, the connection is ended then. Either way within one retry delay (at most 2 s).
 */
export class EndingRedis extends Redis {
  readonly #state: { ending: boolean };

  constructor(options: PlainRedisOptions) {
    const state = { ending: false };
    const retry = options.retryStrategy;
    super({ ...options, retryStrategy: (times) => (state.ending ? null : retry?.(times)) });
    this.#state = state;
    this.on('ready', () => {
      if (state.ending) super.disconnect();
    });
    // BullMQ duplicates its worker's connection for its blocking wait; the copy must end the same way. An own
    // property, not an override: ioredis types duplicate() generically over reply shapes this class never uses.
    Object.defineProperty(this, 'duplicate', {
      value: (override?: Partial<PlainRedisOptions>) => new EndingRedis({ ...options, ...override }),
      // BullMQ wraps clients in a Proxy, whose invariants forbid it to shadow a read-only own property.
      configurable: true,
      writable: true,
    });
  }

  override disconnect(reconnect = false): void {
    if (!reconnect && this.status === 'reconnecting') {
      this.#state.ending = true;
      return;
    }
    super.disconnect(reconnect);
  }
}

/**
 * A new, not yet connected client for `target` (call connect(), or hand it to BullMQ, which connects it).
 * The caller owns it and disconnects it.
 */
export function createRedisClient(target: RedisTarget, role: RedisRole, name: string): Redis | Cluster {
  if ('cluster' in target) return new Cluster(target.cluster, clusterOptions(target, role, name));
  return new EndingRedis(redisOptions(target, role, name));
}

/**
 * Logs a connection's outages once each ('redis connection lost' with the first error, 'redis connection ready'
 * when it is back) instead of once per reconnection attempt. Returns a function that stops the logging.
 */
export function logConnectionState(client: Redis | Cluster, logger: Logger, fields: Record<string, unknown>): () => void {
  let down = false;
  const onError = (err: Error): void => {
    if (down) return;
    down = true;
    logger.log('warn', 'redis connection lost', { ...fields, error: err.message });
  };
  const onReady = (): void => {
    if (!down) return;
    down = false;
    logger.log('info', 'redis connection ready', fields);
  };
  client.on('error', onError);
  client.on('ready', onReady);
  return () => {
    client.off('error', onError);
    client.off('ready', onReady);
  };
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

/**
 * Whether `err` only says the connection to Redis is down (the reconnection logic deals with that), as opposed
 * to an error worth reporting on its own.
 */
export function isConnectionError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ENOENT|ECONNRESET|connect ETIMEDOUT/.test(err.message);
}


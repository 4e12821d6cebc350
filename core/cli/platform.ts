// What `xenfs up` runs: dom0's file server, the event log, the private redis-server (when no external Redis is
// configured), the publisher, the host watcher and the enabled services, started in dependency order and stopped
// in the reverse one without losing an event (docs/events.md, "Shutdown").
import path from 'node:path';
import type { Logger as Pino } from 'pino';
import type { ServerConfig } from '../config/config.ts';
import type { RedisConfig } from '../config/event-flow.ts';
import { EventLog } from '../events/event-log.ts';
import { HostWatcherThread } from '../events/host-watcher-thread.ts';
import { PrivateRedis } from '../events/private-redis.ts';
import { Publisher } from '../events/publisher.ts';
import { RedisCursor } from '../events/redis-cursor.ts';
import type { RedisTarget } from '../events/redis-options.ts';
import { ServiceQueues, type FailedBatch } from '../events/service-queue.ts';
import { ServiceRuntime } from '../plugins/service-runtime.ts';
import { Reconciler } from '../plugins/reconciler.ts';
import { unavailableHooks } from '../plugins/unavailable-hooks.ts';
import { XenfsServer } from '../server/server.ts';
import { fromPino, type Logger } from '../util/log.ts';
import { StatusCollector, type PlatformStatus } from './platform-status.ts';

export interface PlatformOptions {
  logger: Pino;
  /** Stop draining the publisher and the workers after this long at shutdown. Default 10 s. */
  drainMs?: number;
}

/** How a private redis-server that died is brought back: after this long, then twice as long each time, at most 5 s. */
const REDIS_RESTART_MS = 200;

/** Where the configured Redis is; null for the private one `xenfs up` starts. */
export function redisTarget(r: RedisConfig): RedisTarget | null {
  switch (r.mode) {
    case 'private': return null;
    case 'socket': return { path: r.path, ...(r.password ? { password: r.password } : {}) };
    case 'server': return { host: r.host, port: r.port, ...(r.password ? { password: r.password } : {}) };
    case 'cluster': return { cluster: r.nodes, ...(r.password ? { password: r.password } : {}) };
  }
}

export class Platform {
  readonly config: ServerConfig;
  readonly #pino: Pino;
  readonly #log: Logger;
  readonly #drainMs: number;
  #redis: PrivateRedis | null = null;
  #redisRestartMs = REDIS_RESTART_MS;
  #redisTimer: NodeJS.Timeout | null = null;
  #target: RedisTarget | null = null;
  #eventLog: EventLog | null = null;
  #server: XenfsServer | null = null;
  #queues: ServiceQueues | null = null;
  #cursor: RedisCursor | null = null;
  #publisher: Publisher | null = null;
  #watcher: HostWatcherThread | null = null;
  #echoReader: { close(): void } | null = null;
  #runtime: ServiceRuntime | null = null;
  #reconciler: Reconciler | null = null;
  #stopping: Promise<void> | null = null;
  readonly #status = new StatusCollector();

  constructor(config: ServerConfig, opts: PlatformOptions) {
    this.config = config;
    this.#pino = opts.logger;
    this.#log = fromPino(opts.logger);
    this.#drainMs = opts.drainMs ?? 10_000;
  }

  get redisTarget(): RedisTarget | null {
    return this.#target;
  }

  get server(): XenfsServer | null {
    return this.#server;
  }

  get eventLog(): EventLog | null {
    return this.#eventLog;
  }

  /** Starts everything; on a failure, stops what had started and throws. */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const { config } = this;
    // Services are loaded first: a bad module or setting fails the start before anything is running.
    this.#target = redisTarget(config.redis);
    if (!this.#target) {
      const dir = config.redis.mode === 'private' ? config.redis.dir : path.join(config.stateDir, 'redis');
      this.#redis = new PrivateRedis({ dir, logger: this.#log });
      this.#target = this.#redis.target;
    }
    const runtime = new ServiceRuntime({
      config, target: this.#target, logger: this.#pino, ...unavailableHooks(),
    });
    this.#runtime = runtime;
    await runtime.load();
    if (this.#redis) {
      await this.#redis.start();
      this.#redis.on('exit', (exit) => this.#redisExited(exit.expected));
    }
    this.#eventLog = new EventLog(path.join(config.stateDir, 'events'), { segmentBytes: config.events.logSegmentBytes });
    this.#queues = new ServiceQueues({
      target: this.#target,
      services: Object.fromEntries(config.services.map((s) => [s.name, { attempts: s.attempts, backoffMs: s.backoffMs }])),
      maxBatchEvents: config.events.batchMax,
      logger: this.#log,
    });
    this.#cursor = new RedisCursor(this.#target);
    this.#publisher = new Publisher(this.#eventLog, this.#queues, this.#cursor, runtime.subscriptions(), {
      batchMax: config.events.batchMax, batchWindowMs: config.events.batchWindowMs, logger: this.#log,
    });
    this.#server = new XenfsServer(config, this.#log, { eventLog: this.#eventLog.file });
    this.#server.start();
    if (config.events.watchHost) this.#startWatcher();
    void this.#publisher.start();
    await runtime.start();
    const queues = this.#queues;
    const publisher = this.#publisher;
    this.#reconciler = new Reconciler({
      config, runtime, queues, eventLog: this.#eventLog, batchMax: config.events.batchMax, logger: this.#log,
      published: () => publisher.stats().published,
      pending: async (service) => {
        const c = await queues.counts(service);
        return c.waiting + c.active + c.delayed;
      },
    });
    this.#reconciler.start();
    this.#log.log('info', 'xenfs up', {
      config: config.file, redis: this.#redis ? `private ${this.#redis.socketPath}` : 'external',
      services: runtime.subscriptions().map((s) => s.service),
    });
  }

  #startWatcher(): void {
    const exports = this.config.guests.flatMap((g) => g.exports.map((e) => ({ guest: g.name, export: e.name, root: e.path })));
    const watcher = new HostWatcherThread({
      exports,
      logger: this.#log,
      // An export containing dom0's state directory must not report the log's own appends.
      ignoreUnder: path.resolve(this.config.stateDir),
    });
    watcher.on('event', (ev) => {
      try {
        this.#eventLog?.append(ev);
      } catch (err) {
        this.#log.log('error', 'host change not logged', { path: ev.path, error: (err as Error).message });
      }
    });
    // The watcher hears of the server's own changes from the log as soon as they are synced (milliseconds),
    // not from the publisher, which may be held up by Redis: a late note would let an echo through.
    const log = this.#eventLog;
    if (log) {
      const reader = log.reader(log.position().lastSeq + 1);
      const onSynced = (): void => {
        for (let got = reader.read(1000); got.length > 0; got = reader.read(1000)) {
          watcher.noteServerEvents(got.filter((ev) => ev.origin === 'guest'));
        }
      };
      log.on('synced', onSynced);
      this.#echoReader = { close: () => { log.off('synced', onSynced); reader.close(); } };
    }
    this.#watcher = watcher;
  }

  #redisExited(expected: boolean): void {
    if (expected || this.#stopping || !this.#redis) return;
    this.#log.log('error', 'private redis-server died; restarting it', { inMs: this.#redisRestartMs });
    this.#redisTimer = setTimeout(() => {
      this.#redisTimer = null;
      this.#redis?.start().then(
        () => (this.#redisRestartMs = REDIS_RESTART_MS),
        (err: Error) => {
          this.#log.log('error', 'private redis-server did not come back', { error: err.message });
          this.#redisRestartMs = Math.min(this.#redisRestartMs * 2, 5000);
          this.#redisExited(false);
        },
      );
    }, this.#redisRestartMs);
  }

  /** The most recent failed batches of every running service (at most `perService` each), with per-event reasons. */
  async failed(perService = 50): Promise<Array<{ service: string; batches: FailedBatch[] }>> {
    const queues = this.#queues;
    if (!queues || !this.#runtime) return [];
    return Promise.all(this.#runtime.subscriptions().map(async ({ service }) => ({
      service, batches: await queues.failed(service, 0, perService - 1),
    })));
  }

  async status(): Promise<PlatformStatus> {
    return this.#status.collect({
      config: this.config, server: this.#server, queues: this.#queues, runtime: this.#runtime,
      publisher: this.#publisher, reconciler: this.#reconciler, redis: this.#redis, eventLog: this.#eventLog,
    });
  }

  /**
   * Stops in order: guests are let go first (no new changes), then the host watcher, then the publisher drains
   * the log into the queues, the services finish their batches, and Redis and the log close last. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        this.#log.log('error', `shutdown: ${what} failed`, { error: (err as Error).message });
      }
    };
    if (this.#redisTimer) clearTimeout(this.#redisTimer);
    await step('server', () => this.#server?.stop());
    await step('host watcher', () => this.#watcher?.close());
    this.#echoReader?.close();
    await step('reconciliation', () => this.#reconciler?.stop());
    await step('publisher', async () => {
      const drained = await this.#publisher?.stop(this.#drainMs);
      if (drained === false) this.#log.log('warn', 'events left in the log; they are published at the next start', {});
    });
    await step('services', () => this.#runtime?.stop());
    await step('queues', () => this.#queues?.close());
    await step('cursor', () => this.#cursor?.close());
    await step('redis', () => this.#redis?.stop());
    await step('event log', () => this.#eventLog?.close());
    this.#log.log('info', 'xenfs down', {});
  }
}

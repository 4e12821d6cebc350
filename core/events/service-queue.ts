// The producer side of the event queues: one BullMQ queue per service, each job a batch of change events
// (batch-job.ts). The publisher adds batches here; ServiceWorker consumes them. Retries and failures are per
// event (see service-worker.ts); what this side decides per service is how many attempts a batch gets, how long
// to back off, and how many failed batches to keep for inspection. Completed batches are deleted at once, so
// Redis holds what is in flight and the kept failures, not the history of every event.
import type { Cluster, Redis } from 'ioredis';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import { ConfigError, DisconnectedError, LimitError } from '../errors.ts';
import { stderrLogger, type Logger } from '../util/log.ts';
import type { ChangeEvent } from './change-event.ts';
import {
  BATCH_JOB_NAME, BadEventError, batchJobId, checkServiceName, parseBatchJob, parseEvents, type BatchJobData, type EventFailure,
} from './batch-job.ts';
import { createRedisClient, describeTarget, logConnectionState, queuePrefix, type RedisTarget } from './redis-options.ts';

/** How one service's batches are retried and kept. */
export interface ServiceQueueSettings {
  /** Attempts per batch, the first included (1: no retry). Default 5. */
  attempts: number;
  /** Milliseconds before the first retry; each later retry waits twice as long as the one before. Default 1000. */
  backoffMs: number;
  /** Failed batches kept per service for inspection; older ones are deleted as new ones fail. Default 1000. */
  keepFailed: number;
}

export const DEFAULT_QUEUE_SETTINGS: Readonly<ServiceQueueSettings> = { attempts: 5, backoffMs: 1000, keepFailed: 1000 };

/** Entries of each queue's BullMQ event stream (BullMQ's default is 10 000); nothing in XenFS reads it. */
const EVENT_STREAM_LEN = 1000;

export interface ServiceQueuesOptions {
  target: RedisTarget;
  /** Settings of services that `services` does not name, and the base of those it does. */
  defaults?: Partial<ServiceQueueSettings>;
  services?: Record<string, Partial<ServiceQueueSettings>>;
  /** The most events one batch may hold (LimitError 'maxBatchEvents' beyond). Default 1000. */
  maxBatchEvents?: number;
  logger?: Logger;
}

/** One batch for addBatches(). */
export interface BatchSpec {
  service: string;
  /** In increasing seq order, at least one. */
  events: ChangeEvent[];
  /** Overrides the service's settings for this batch. */
  opts?: Partial<ServiceQueueSettings>;
  /**
   * The job's id; default `${first seq}-${last seq}`. Batches whose events share one seq (a reconciliation's)
   * need their own.
   */
  jobId?: string;
}

/** Batches of one service by state. */
export interface QueueCounts {
  /** Ready to run (waiting or prioritized; a paused queue's jobs wait too). */
  waiting: number;
  /** Being handled by a worker now. */
  active: number;
  /** Waiting out a retry's backoff. */
  delayed: number;
  /** Out of attempts, kept for inspection (at most keepFailed). */
  failed: number;
  /** Always 0 unless someone else's jobs keep their results: completed batches are deleted. */
  completed: number;
}

/** A batch that ran out of attempts, as failed() reports it. */
export interface FailedBatch {
  jobId: string;
  attemptsMade: number;
  /** When it failed for the last time (ms since the epoch), if Redis says. */
  failedAt: number | null;
  /** BullMQ's failedReason: the failed events in words, or why the job itself was refused. */
  reason: string;
  /** The batch, or null when its data is not a valid batch (then `reason` says what is wrong with it). */
  events: ChangeEvent[] | null;
  /** Indexes into `events` of those some attempt handled: these are not run again if the batch is retried. */
  done: number[];
  /** The failed events, from the last attempt. */
  failures: EventFailure[];
}

function checkSettings(s: Partial<ServiceQueueSettings>, key: string): Partial<ServiceQueueSettings> {
  const ranges: Record<keyof ServiceQueueSettings, [number, number]> = {
    attempts: [1, 1000],
    backoffMs: [0, 86_400_000],
    keepFailed: [0, 1_000_000],
  };
  for (const [k, v] of Object.entries(s)) {
    const range = ranges[k as keyof ServiceQueueSettings];
    if (range === undefined) throw new ConfigError('queues', `${key}.${k}`, `is not a known key (${Object.keys(ranges).join(', ')})`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      throw new ConfigError('queues', `${key}.${k}`, `must be an integer in ${range[0]}..${range[1]}`);
    }
  }
  return s;
}

/**
 * The producer: adds batches to services' queues and reports on them. Owns one Redis connection, shared by
 * every service's queue; close() closes it (idempotent). Adding fails fast with DisconnectedError while Redis
 * is unreachable (see redis-options.ts for why), so call waitUntilReady() after construction.
 */
export class ServiceQueues {
  readonly prefix: string;
  readonly #target: RedisTarget;
  readonly #client: Redis | Cluster;
  readonly #logger: Logger;
  readonly #defaults: ServiceQueueSettings;
  readonly #services: Record<string, Partial<ServiceQueueSettings>>;
  readonly #maxBatchEvents: number;
  readonly #queues = new Map<string, Queue>();
  readonly #stopLogging: () => void;
  #closing: Promise<void> | null = null;

  constructor(opts: ServiceQueuesOptions) {
    this.#target = opts.target;
    this.prefix = queuePrefix(opts.target);
    this.#logger = opts.logger ?? stderrLogger;
    this.#defaults = { ...DEFAULT_QUEUE_SETTINGS, ...checkSettings(opts.defaults ?? {}, 'defaults') };
    this.#services = {};
    for (const [name, s] of Object.entries(opts.services ?? {})) {
      this.#services[checkServiceName(name)] = checkSettings(s, `services.${name}`);
    }
    const max = opts.maxBatchEvents ?? 1000;
    if (!Number.isInteger(max) || max < 1) throw new ConfigError('queues', 'maxBatchEvents', 'must be a positive integer');
    this.#maxBatchEvents = max;
    this.#client = createRedisClient(opts.target, 'producer', 'xenfs:producer');
    this.#stopLogging = logConnectionState(this.#client, this.#logger, { redis: describeTarget(opts.target), role: 'producer' });
    // Reconnection after a failure is ioredis's business (its retryStrategy); only the first attempt is ours.
    this.#client.connect().catch(() => {});
  }

  /** The settings a batch for `service` gets, with `opts` on top. */
  settings(service: string, opts: Partial<ServiceQueueSettings> = {}): ServiceQueueSettings {
    return { ...this.#defaults, ...this.#services[service], ...checkSettings(opts, 'opts') };
  }

  /** Resolves once connected to Redis; DisconnectedError after `timeoutMs`. */
  async waitUntilReady(timeoutMs = 10_000): Promise<void> {
    if (this.#client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#client.off('ready', onReady);
        reject(new DisconnectedError(`redis at ${describeTarget(this.#target)} not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.#client.once('ready', onReady);
    });
  }

  /**
   * Adds one batch to `service`'s queue; resolves with its job id (`${first seq}-${last seq}`). If a job with
   * that id is still in Redis (waiting, running, delayed, or failed and kept), nothing is added: replaying a
   * batch is safe. Throws BadEventError for malformed events, LimitError past maxBatchEvents,
   * DisconnectedError when Redis is unreachable.
   */
  async addBatch(service: string, events: ChangeEvent[], opts?: Partial<ServiceQueueSettings>): Promise<string> {
    const [id] = await this.addBatches([{ service, events, ...(opts ? { opts } : {}) }]);
    return id as string;
  }

  /**
   * Adds many batches, for any number of services, without waiting for Redis between them (one pipeline per
   * service, all sent at once): what a publisher flushing often wants. Not atomic across services: after an
   * error some may have been added, and adding them all again is the way to finish (ids make it idempotent).
   * Resolves with the job ids in the order given.
   */
  async addBatches(batches: readonly BatchSpec[]): Promise<string[]> {
    const byService = new Map<string, Array<{ name: string; data: BatchJobData; opts: JobsOptions }>>();
    const ids = batches.map((b, i) => {
      checkServiceName(b.service);
      if (!Array.isArray(b.events)) throw new BadEventError(`batches[${i}].events`, 'must be an array');
      if (b.events.length > this.#maxBatchEvents) {
        throw new LimitError('maxBatchEvents', `a batch of ${b.events.length} events for ${b.service} (at most ${this.#maxBatchEvents})`);
      }
      const events = parseEvents(b.events, `batches[${i}].events`);
      const jobId = b.jobId ?? batchJobId(events);
      const s = this.settings(b.service, b.opts);
      const job = {
        name: BATCH_JOB_NAME,
        data: { events },
        opts: {
          jobId,
          attempts: s.attempts,
          backoff: { type: 'exponential', delay: s.backoffMs },
          removeOnComplete: true,
          removeOnFail: { count: s.keepFailed },
          // Each failed attempt would append its stack to the job; the last one is enough.
          stackTraceLimit: 1,
        } satisfies JobsOptions,
      };
      const list = byService.get(b.service) ?? [];
      list.push(job);
      byService.set(b.service, list);
      return jobId;
    });
    this.#checkConnected();
    try {
      await Promise.all([...byService].map(([service, jobs]) => this.#queue(service).addBulk(jobs)));
    } catch (err) {
      throw this.#connectionError(err);
    }
    return ids;
  }

  /** How many of `service`'s batches are in each state. */
  async counts(service: string): Promise<QueueCounts> {
    this.#checkConnected();
    try {
      const c = await this.#queue(checkServiceName(service))
        .getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed');
      const n = (k: string): number => c[k] ?? 0;
      return {
        waiting: n('waiting') + n('prioritized'),
        active: n('active'),
        delayed: n('delayed'),
        failed: n('failed'),
        completed: n('completed'),
      };
    } catch (err) {
      throw this.#connectionError(err);
    }
  }

  /** `service`'s failed batches, newest first, from index `start` to `end` inclusive. */
  async failed(service: string, start = 0, end = 99): Promise<FailedBatch[]> {
    this.#checkConnected();
    let jobs: Job[];
    try {
      jobs = await this.#queue(checkServiceName(service)).getFailed(start, end);
    } catch (err) {
      throw this.#connectionError(err);
    }
    return jobs.map(describeFailed);
  }

  /** Closes every queue and the connection; idempotent. Batches already added stay in Redis. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
      this.#queues.clear();
      this.#stopLogging();
      try {
        await this.#client.quit();
      } catch {
        // Not connected: nothing to say goodbye to.
        this.#client.disconnect();
      }
    })();
    return this.#closing;
  }

  #queue(service: string): Queue {
    if (this.#closing) throw new DisconnectedError('service queues closed');
    let q = this.#queues.get(service);
    if (!q) {
      q = new Queue(service, { connection: this.#client, prefix: this.prefix, streams: { events: { maxLen: EVENT_STREAM_LEN } } });
      // Connection errors reach here too; logConnectionState reports those once per outage.
      q.on('error', (err) => this.#logger.log('debug', 'queue error', { service, error: err.message }));
      this.#queues.set(service, q);
    }
    return q;
  }

  #checkConnected(): void {
    if (this.#closing) throw new DisconnectedError('service queues closed');
    if (this.#client.status !== 'ready') {
      throw new DisconnectedError(`redis at ${describeTarget(this.#target)} is not connected (${this.#client.status})`);
    }
  }

  /** `err`, or a DisconnectedError wrapping it when the connection is what failed. */
  #connectionError(err: unknown): unknown {
    if (this.#client.status === 'ready' && !this.#closing) return err;
    return new DisconnectedError(`redis at ${describeTarget(this.#target)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function describeFailed(job: Job): FailedBatch {
  let batch: BatchJobData | null = null;
  try {
    batch = parseBatchJob(job.name, job.data);
  } catch {
    // A job that is not a valid batch is reported with its reason and no events.
  }
  return {
    jobId: job.id ?? '',
    attemptsMade: job.attemptsMade,
    failedAt: job.finishedOn ?? null,
    reason: job.failedReason ?? '',
    events: batch?.events ?? null,
    done: batch?.done ?? [],
    failures: batch?.failures ?? [],
  };
}

// The consumer side of one service's queue: a BullMQ Worker whose jobs are batches of change events
// (batch-job.ts), handed to the service's handler only after they are checked. A batch succeeds or fails event
// by event: the events that succeeded are written onto the job before it is failed, so BullMQ's retry (with
// the queue's backoff) runs only the others, and a batch out of attempts stays in the failed set naming each
// failed event. See docs/queues.md.
//
// Where an unfinished batch goes when its worker stops:
// - close() waits for running handlers up to its timeout, then puts each unfinished job back in the waiting
//   list itself (and aborts the handler's signal): another worker takes it at once.
// - A worker that dies (crash, SIGKILL, machine gone) cannot do that. Its jobs hold a lock that it renewed every
//   lockDuration/2; once the lock expires, BullMQ's stalled-job check (every stalledInterval, run by every live
//   worker of the queue) moves them back to waiting. That takes at most lockDuration + 2 x stalledInterval:
//   9 s with the defaults here (BullMQ's own, 30 s and 30 s, would take 90 s).
import { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { ConfigError, DisconnectedError, XenfsError } from '../errors.ts';
import { stderrLogger, type Logger } from '../util/log.ts';
import type { ChangeEvent } from './change-event.ts';
import {
  BadEventError, EventsFailedError, checkServiceName, failureOf, parseBatchJob, type BatchJobData, type EventFailure,
} from './batch-job.ts';
import {
  createRedisClient, describeTarget, isConnectionError, logConnectionState, queuePrefix, type RedisTarget,
} from './redis-options.ts';

/** What became of one event: handled, or the error that stopped it. */
export type EventOutcome = 'ok' | Error;

/**
 * An outcome that retrying cannot change (the event itself is the problem). A batch whose failures are all
 * permanent fails at once, without its remaining attempts.
 */
export class PermanentEventError extends Error {
  override name = 'PermanentEventError';
}

export interface BatchInfo {
  /** 1 on the first run of a batch, n on its n-th attempt (a run restarted after a stall keeps its number). */
  attempt: number;
  jobId: string;
  /**
   * Aborted when the worker gives the batch back unfinished (close() timed out): the handler should stop, as
   * its outcome is no longer wanted. (BullMQ's own job cancellation aborts it too.)
   */
  signal: AbortSignal;
}

/**
 * A service's handler: returns one outcome per event, in order. Throwing fails every event of the batch. It
 * sees only events it has not handled yet, and only events that passed parseChangeEvent.
 */
export type BatchHandler = (events: ChangeEvent[], info: BatchInfo) => Promise<EventOutcome[]>;

export interface ServiceWorkerOptions {
  target: RedisTarget;
  service: string;
  handler: BatchHandler;
  /** Batches handled at once by this worker. Default 1. */
  concurrency?: number;
  /** At most `max` batches started per `duration` ms, across all workers of the queue. Default none. */
  limiter?: { max: number; duration: number };
  /**
   * Milliseconds a batch stays locked without renewal (the worker renews every half of it). A handler that
   * blocks the event loop longer than this loses its batch to another worker. Default 5000.
   */
  lockDuration?: number;
  /** Milliseconds between stalled-job checks. Default 2000. */
  stalledInterval?: number;
  /** Times a batch may stall (its worker dying under it) before it is failed. Default 1. */
  maxStalledCount?: number;
  /** Shows in Redis's CLIENT LIST and on the jobs it handles. */
  name?: string;
  logger?: Logger;
}

export interface WorkerStats {
  /** Batches whose events all succeeded (on this worker). */
  jobsDone: number;
  /** Attempts that failed some event (each retry counts again). */
  jobsFailed: number;
  /** Jobs refused because their data was not a valid batch. */
  jobsInvalid: number;
  eventsDone: number;
  /** Events that failed an attempt (an event failing three attempts counts three times). */
  eventsFailed: number;
  /** Batches whose handler is running now. */
  inFlight: number;
  /** When a handler last returned (ms since the epoch), or null: with the log's head, a service's lag. */
  lastHandledAt: number | null;
}

export interface BatchDone {
  jobId: string;
  attempt: number;
  /** Events handled by this attempt. */
  events: number;
  ms: number;
}

export interface BatchFailed {
  jobId: string;
  attempt: number;
  /** The events this attempt failed; empty when the job itself was refused (`reason` says why). */
  failures: EventFailure[];
  reason: string;
  /** Whether BullMQ will run the batch again (after its backoff). */
  willRetry: boolean;
}

interface ServiceWorkerEvents {
  'batch-done': [BatchDone];
  'batch-failed': [BatchFailed];
  /** Errors beside batch failures (lock renewal, Redis scripts); connection losses are logged, not emitted. */
  error: [Error];
  closed: [];
}

/** How long close() tries to give unfinished batches back before leaving them to the stalled check. */
const GIVE_BACK_MS = 2000;

interface Running {
  job: Job;
  token: string;
  abort: AbortController;
  /** Ends the job's processing with WaitingError, which tells BullMQ the job was moved back already. */
  giveBack: (err: WaitingError) => void;
}

function positiveInt(v: number | undefined, key: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new ConfigError('worker', key, 'must be a positive integer');
  return v;
}

/**
 * Consumes one service's batches. Starts at once; close() stops it (idempotent). Owns its Redis connections.
 */
export class ServiceWorker extends EventEmitter<ServiceWorkerEvents> {
  readonly service: string;
  readonly #handler: BatchHandler;
  readonly #logger: Logger;
  readonly #client: Redis | Cluster;
  readonly #worker: Worker;
  readonly #running = new Set<Running>();
  readonly #idleWaiters: Array<() => void> = [];
  readonly #stats: WorkerStats = {
    jobsDone: 0, jobsFailed: 0, jobsInvalid: 0, eventsDone: 0, eventsFailed: 0, inFlight: 0, lastHandledAt: null,
  };
  readonly #stopLogging: () => void;
  #givingBack = false;
  #closing: Promise<void> | null = null;

  constructor(opts: ServiceWorkerOptions) {
    super();
    this.service = checkServiceName(opts.service);
    this.#handler = opts.handler;
    this.#logger = opts.logger ?? stderrLogger;
    const lockDuration = positiveInt(opts.lockDuration, 'lockDuration', 5000);
    const stalledInterval = positiveInt(opts.stalledInterval, 'stalledInterval', 2000);
    const limiter = opts.limiter && {
      max: positiveInt(opts.limiter.max, 'limiter.max', 1),
      duration: positiveInt(opts.limiter.duration, 'limiter.duration', 1),
    };
    const name = opts.name ?? `${this.service}-${process.pid}`;
    // BullMQ runs its commands on this connection and opens a second one, of its own, for its blocking wait.
    this.#client = createRedisClient(opts.target, 'worker', `xenfs:worker:${name}`);
    const fields = { redis: describeTarget(opts.target), role: 'worker', service: this.service };
    this.#stopLogging = logConnectionState(this.#client, this.#logger, fields);
    this.#worker = new Worker(this.service, (job, token, signal) => this.#process(job, token ?? '', signal), {
      connection: this.#client,
      prefix: queuePrefix(opts.target),
      name,
      concurrency: positiveInt(opts.concurrency, 'concurrency', 1),
      ...(limiter ? { limiter } : {}),
      lockDuration,
      stalledInterval,
      maxStalledCount: positiveInt(opts.maxStalledCount, 'maxStalledCount', 1),
    });
    this.#worker.on('error', (err) => this.#onError(err));
    this.#worker.on('stalled', (jobId) => this.#logger.log('warn', 'batch stalled, back to waiting', { ...fields, jobId }));
  }

  /** Resolves once both of BullMQ's connections are up. */
  async waitUntilReady(): Promise<void> {
    await this.#worker.waitUntilReady();
  }

  /** A copy of the counters. */
  get stats(): WorkerStats {
    return { ...this.#stats, inFlight: this.#running.size };
  }

  /**
   * Stops taking batches and waits up to `timeoutMs` (default 10 s) for running handlers. Batches still running
   * then are put back in the waiting list for another worker, their handlers' signals aborted (a handler that
   * ignores its signal runs on, but its outcome is dropped). Idempotent.
   */
  close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(opts.timeoutMs ?? 10_000);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    let bullClosed = false;
    const closed = this.#worker.close(false).then(
      () => {
        bullClosed = true;
      },
      (err: unknown) => {
        bullClosed = true;
        this.#logger.log('warn', 'worker close failed', { service: this.service, error: String(err) });
      },
    );
    // Nothing running and Redis away: nothing to wait for (BullMQ itself would wait for Redis to be back).
    const idleAndDown = this.#running.size === 0 && this.#client.status !== 'ready';
    const deadline = Date.now() + (idleAndDown ? 0 : timeoutMs);
    await raceTimeout(closed, deadline - Date.now());
    // BullMQ's close can also end before the handlers do (it stops waiting when a connection errors): the
    // handlers are ours to wait for.
    await raceTimeout(this.#idle(), Math.max(0, deadline - Date.now()));
    if (this.#running.size > 0) {
      this.#givingBack = true;
      this.#logger.log('warn', 'handlers still running at close; giving their batches back', {
        service: this.service, jobs: [...this.#running].map((r) => r.job.id),
      });
      // Bounded: with Redis away this would wait for it. The stalled check recovers what is not given back.
      await raceTimeout(Promise.all([...this.#running].map((r) => this.#giveBack(r))), GIVE_BACK_MS);
    }
    if (!bullClosed) {
      // What BullMQ still waits for is a command waiting for Redis on this connection: ending the connection
      // fails it, and BullMQ's close can finish.
      this.#client.disconnect();
      if (!(await raceTimeout(closed, 5000))) this.#logger.log('error', 'worker did not close in time', { service: this.service });
    }
    this.#stopLogging();
    if (this.#client.status === 'ready') await this.#client.quit().catch(() => {});
    this.#client.disconnect();
    this.emit('closed');
  }

  /** Resolves once no handler is running. */
  #idle(): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Puts a running batch back in the waiting list, as close() does when its timeout is up. While Redis is away
   * it does not try: the batch stays locked until its lock expires, and then the stalled check returns it.
   */
  async #giveBack(r: Running): Promise<void> {
    r.abort.abort(new DisconnectedError(`worker for ${this.service} closing`));
    try {
      if (this.#client.status !== 'ready') throw new DisconnectedError('redis is not connected');
      await r.job.moveToWait(r.token);
    } catch (err) {
      // Or it finished meanwhile: then there is nothing to give back.
      this.#logger.log('warn', 'could not give a batch back; the stalled check will', {
        service: this.service, jobId: r.job.id, error: String(err),
      });
    }
    r.giveBack(new WaitingError());
  }

  #onError(err: Error): void {
    if (isConnectionError(err)) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#logger.log('error', 'worker error', { service: this.service, error: err.message });
  }

  /** BullMQ's processor: one job, one attempt. Resolving completes the job; throwing fails this attempt. */
  async #process(job: Job, token: string, bullSignal?: AbortSignal): Promise<void> {
    const jobId = job.id ?? '';
    const attempt = job.attemptsMade + 1;
    let batch: BatchJobData;
    try {
      batch = parseBatchJob(job.name, job.data);
    } catch (err) {
      if (!(err instanceof BadEventError)) throw err;
      this.#stats.jobsInvalid += 1;
      this.#failed({ jobId, attempt, failures: [], reason: err.message, willRetry: false });
      throw new UnrecoverableError(err.message);
    }
    const done = new Set(batch.done);
    const indexes = batch.events.flatMap((_, i) => (done.has(i) ? [] : [i]));
    const pending = indexes.map((i) => batch.events[i] as ChangeEvent);
    // An earlier attempt handled everything and died before it could say so.
    if (pending.length === 0) return;

    const started = Date.now();
    const outcomes = await this.#run(job, token, pending, attempt, bullSignal);
    this.#stats.lastHandledAt = Date.now();
    const ok: number[] = [];
    const failures: EventFailure[] = [];
    pending.forEach((e, k) => {
      const o = outcomes[k];
      if (o === 'ok') ok.push(indexes[k] as number);
      else failures.push(failureOf(e, o));
    });
    this.#stats.eventsDone += ok.length;
    this.#stats.eventsFailed += failures.length;
    if (failures.length === 0) {
      this.#stats.jobsDone += 1;
      this.emit('batch-done', { jobId, attempt, events: ok.length, ms: Date.now() - started });
      return;
    }
    this.#stats.jobsFailed += 1;
    // Before failing the attempt: a retry must know which events not to run again.
    await job.updateData({ events: batch.events, done: [...(batch.done ?? []), ...ok], failures } satisfies BatchJobData);
    const err = new EventsFailedError(failures, pending.length);
    const permanent = outcomes.every((o) => o === 'ok' || o instanceof PermanentEventError);
    this.#failed({ jobId, attempt, failures, reason: err.message, willRetry: !permanent && attempt < (job.opts.attempts ?? 1) });
    if (permanent) throw new UnrecoverableError(err.message);
    throw err;
  }

  /** Runs the handler on `pending`; one outcome per event whatever the handler does, unless the batch is given back. */
  async #run(job: Job, token: string, pending: ChangeEvent[], attempt: number, bullSignal?: AbortSignal): Promise<EventOutcome[]> {
    const abort = new AbortController();
    const onCancel = (): void => abort.abort(bullSignal?.reason);
    bullSignal?.addEventListener('abort', onCancel, { once: true });
    let giveBack: (err: WaitingError) => void = () => {};
    const givenBack = new Promise<never>((_, reject) => {
      giveBack = reject;
    });
    const running: Running = { job, token, abort, giveBack };
    this.#running.add(running);
    // Started after close() gave up waiting: straight back to the queue.
    if (this.#givingBack) void this.#giveBack(running);
    try {
      return await Promise.race([this.#call(pending, { attempt, jobId: job.id ?? '', signal: abort.signal }), givenBack]);
    } finally {
      this.#running.delete(running);
      bullSignal?.removeEventListener('abort', onCancel);
      if (this.#running.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  async #call(pending: ChangeEvent[], info: BatchInfo): Promise<EventOutcome[]> {
    let outcomes: unknown;
    try {
      outcomes = await this.#handler(pending, info);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      return pending.map(() => error);
    }
    if (!Array.isArray(outcomes) || outcomes.length !== pending.length) {
      const got = Array.isArray(outcomes) ? `${outcomes.length} outcomes` : typeof outcomes;
      const bug = new XenfsError('XENFS_ERR_INTERNAL', `the ${this.service} handler returned ${got} for ${pending.length} events`);
      this.#logger.log('error', 'handler broke its contract', { service: this.service, jobId: info.jobId, error: bug.message });
      return pending.map(() => bug);
    }
    return outcomes.map((o: unknown) => (o === 'ok' || o instanceof Error
      ? o
      : new XenfsError('XENFS_ERR_INTERNAL', `the ${this.service} handler returned ${JSON.stringify(o)}, neither 'ok' nor an Error`)));
  }

  #failed(info: BatchFailed): void {
    this.#logger.log(info.willRetry ? 'warn' : 'error', 'batch failed', {
      service: this.service, jobId: info.jobId, attempt: info.attempt, willRetry: info.willRetry, reason: info.reason,
    });
    this.emit('batch-failed', info);
  }
}

/** Whether `p` settles within `ms`. */
async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

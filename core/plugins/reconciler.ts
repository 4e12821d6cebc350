// Reconciliation passes at start (docs/events.md, "Nothing lost"): for every running service and every guest
// export it subscribes to, the export is compared with what the service recorded, and the difference goes on the
// service's queue as events like any other. This is how a service converges after any crash, and how it catches
// up with files a guest had before the service existed (initial indexing), with progress in `xenfs status`.
import type { ServerConfig } from '../config/config.ts';
import type { ChangeEvent } from '../events/change-event.ts';
import type { EventLog } from '../events/event-log.ts';
import { matches, type BatchSink, type Subscription } from '../events/publisher.ts';
import type { Logger } from '../util/log.ts';
import { reconcile } from './reconcile.ts';
import type { ServiceRuntime } from './service-runtime.ts';

export interface ReconcilerOptions {
  config: ServerConfig;
  runtime: ServiceRuntime;
  /** Batches carry explicit ids: every event of a pass has the same seq. */
  queues: BatchSink;
  eventLog: EventLog;
  /** The last seq the publisher has put on the queues. */
  published: () => number;
  /** Batches of `service` not yet handled (waiting, active or delayed); throws while Redis is away. */
  pending: (service: string) => Promise<number>;
  batchMax: number;
  logger: Logger;
}

export interface ReconcileTask {
  service: string;
  guest: string;
  export: string;
  /** `waiting`: for the service to catch up with the log before comparing. */
  state: 'pending' | 'waiting' | 'running' | 'done' | 'failed' | 'stopped';
  scanned: number;
  emitted: number;
  /** Names in the export, once the pass has ended. */
  total?: number;
  error?: string;
}

export class Reconciler {
  readonly #opts: ReconcilerOptions;
  readonly #tasks: ReconcileTask[] = [];
  readonly #abort = new AbortController();
  #done: Promise<void> = Promise.resolve();

  constructor(opts: ReconcilerOptions) {
    this.#opts = opts;
  }

  /** Plans one pass per service and export, and runs them one after another in the background. */
  start(): void {
    const { config, runtime } = this.#opts;
    for (const sub of runtime.subscriptions()) {
      for (const g of config.guests) {
        if (sub.guests && !sub.guests.includes(g.name)) continue;
        for (const e of g.exports) {
          if (sub.exports && !sub.exports.includes(e.name)) continue;
          this.#tasks.push({ service: sub.service, guest: g.name, export: e.name, state: 'pending', scanned: 0, emitted: 0 });
        }
      }
    }
    this.#done = this.#runAll();
  }

  status(): readonly ReconcileTask[] {
    return this.#tasks.map((t) => ({ ...t }));
  }

  /** Aborts the pass running now and skips the rest; they run at the next start. */
  async stop(): Promise<void> {
    this.#abort.abort(new Error('reconciliation stopped'));
    await this.#done;
  }

  async #runAll(): Promise<void> {
    const subs = new Map(this.#opts.runtime.subscriptions().map((s) => [s.service, s]));
    for (const task of this.#tasks) {
      if (this.#abort.signal.aborted) {
        task.state = 'stopped';
        continue;
      }
      const sub = subs.get(task.service);
      if (!sub) continue;
      try {
        task.state = 'waiting';
        await this.#caughtUp(task.service);
        task.state = 'running';
        await this.#run(task, sub);
        task.state = 'done';
      } catch (err) {
        task.state = this.#abort.signal.aborted ? 'stopped' : 'failed';
        task.error = (err as Error).message;
        if (task.state === 'failed') {
          this.#opts.logger.log('error', 'reconciliation failed', { service: task.service, guest: task.guest, export: task.export, error: task.error });
        }
      }
    }
  }

  // The comparison must see the record as the log left it: an older event still queued (a file created before
  // a crash, renamed away while dom0 was down) would otherwise be handled after the pass and undo what it found.
  async #caughtUp(service: string): Promise<void> {
    const target = this.#opts.eventLog.position().lastSeq;
    for (;;) {
      this.#abort.signal.throwIfAborted();
      if (this.#opts.published() >= target) {
        try {
          if ((await this.#opts.pending(service)) === 0) return;
        } catch {
          // Redis away: wait for it like everyone else
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async #run(task: ReconcileTask, sub: Subscription): Promise<void> {
    const { config, runtime, queues, eventLog, batchMax, logger } = this.#opts;
    const state = runtime.recorded(task.service);
    const root = config.guests.find((g) => g.name === task.guest)?.exports.find((e) => e.name === task.export)?.path;
    if (!state || !root) return;
    // Every difference is stamped with the log's position now: later events (newer seqs) win over it, and it
    // wins over older ones still waiting in the queue, in the service's record as in what the service sees.
    const seq = eventLog.position().lastSeq;
    const time = Date.now();
    let batch: ChangeEvent[] = [];
    let batches = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const jobId = `reconcile-${seq}-${time}-${task.guest}-${task.export}-${batches++}`;
      // Redis may be away (starting, restarting): the pass waits for it rather than give up.
      for (let waitMs = 100; ; waitMs = Math.min(waitMs * 2, 5000)) {
        try {
          await queues.addBatches([{ service: task.service, events: batch, jobId }]);
          break;
        } catch (err) {
          if (this.#abort.signal.aborted) throw err;
          task.error = (err as Error).message;
          await new Promise((r) => setTimeout(r, waitMs));
        }
      }
      delete task.error;
      batch = [];
    };
    const gen = reconcile({
      guest: task.guest, export: task.export, root, state, signal: this.#abort.signal, logger,
      onProgress: (p) => {
        task.scanned = p.scanned;
        task.emitted = p.emitted;
        if (p.total !== undefined) task.total = p.total;
      },
    });
    for await (const ev of gen) {
      const full: ChangeEvent = { ...ev, seq, origin: 'reconcile' };
      if (!matches(sub, full)) continue;
      batch.push(full);
      if (batch.length >= batchMax) await flush();
    }
    await flush();
    logger.log('info', 'reconciliation done', { service: task.service, guest: task.guest, export: task.export, scanned: task.scanned, emitted: task.emitted });
  }
}

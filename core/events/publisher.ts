// From the event log to the services' queues (docs/events.md). The publisher reads synced events in seq order,
// gives each subscribed service the ones it asked for in batches (at most `batchMax` events, formed within
// `batchWindowMs` of the first), and only then advances the published cursor, which lives beside the queues: a
// Redis that lost the batches lost the cursor's advance too, and they are published again (the batch ids make
// that a no-op for batches Redis still has). While Redis is away the events wait in the log, not in memory.
import type { Logger } from '../util/log.ts';
import type { ChangeEvent, EventKind } from './change-event.ts';
import type { EventLog, EventLogReader } from './event-log.ts';

/** What one service wants to hear about; an absent list means everything. */
export interface Subscription {
  service: string;
  kinds?: readonly EventKind[];
  guests?: readonly string[];
  exports?: readonly string[];
}

/**
 * Where batches go: ServiceQueues.addBatches. A batch's id is its `jobId`, else derived from its seqs; adding a
 * batch whose id is still queued must be harmless.
 */
export interface BatchSink {
  addBatches(batches: ReadonlyArray<{ service: string; events: ChangeEvent[]; jobId?: string }>): Promise<unknown>;
}

/** The last seq published to every service, kept where the batches are. */
export interface CursorStore {
  get(): Promise<number>;
  set(seq: number): Promise<void>;
  /**
   * Counts the store's (re)connections. When it changes, the store may have come back with less than it had (a
   * Redis restarted from an AOF that missed its last second): the publisher reads the cursor again and goes back.
   */
  epoch(): number;
}

export interface PublisherOptions {
  /** Events per batch (one job). */
  batchMax: number;
  /** How long the first event of a batch may wait for others. */
  batchWindowMs: number;
  /** Log segments are deleted only once their events have been published for this long (Redis's fsync lag). */
  truncateAfterMs?: number;
  logger: Logger;
}

export interface PublisherStats {
  /** Last seq handed to every subscriber's queue. */
  published: number;
  /** Last seq synced to the log. */
  logged: number;
  /** Events published since start. */
  events: number;
  /** Batches added since start. */
  batches: number;
  /** The sink is failing (Redis away): events wait in the log. */
  stalled: boolean;
  lastError: string | null;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

export function matches(sub: Subscription, ev: ChangeEvent): boolean {
  return (
    (!sub.kinds || sub.kinds.includes(ev.kind)) &&
    (!sub.guests || sub.guests.includes(ev.guest)) &&
    (!sub.exports || sub.exports.includes(ev.export))
  );
}

export class Publisher {
  readonly #log: EventLog;
  readonly #sink: BatchSink;
  readonly #cursor: CursorStore;
  readonly #subs: readonly Subscription[];
  readonly #opts: Required<PublisherOptions>;
  #reader: EventLogReader | null = null;
  #pending: ChangeEvent[] = []; // read from the log, not yet published
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #retryMs = RETRY_MIN_MS;
  #epoch = -1;
  #stopped = false;
  #published = 0;
  #events = 0;
  #batches = 0;
  #stalled = false;
  #lastError: string | null = null;
  readonly #truncations: Array<{ at: number; seq: number }> = [];
  readonly #onSynced = (): void => this.#schedule(this.#opts.batchWindowMs);

  constructor(log: EventLog, sink: BatchSink, cursor: CursorStore, subs: readonly Subscription[], opts: PublisherOptions) {
    this.#log = log;
    this.#sink = sink;
    this.#cursor = cursor;
    this.#subs = subs;
    this.#opts = { truncateAfterMs: 5000, ...opts };
  }

  /** Reads the cursor (waiting for Redis as long as it takes, unless stopped) and starts publishing from there. */
  async start(): Promise<void> {
    for (;;) {
      try {
        this.#epoch = this.#cursor.epoch();
        this.#published = await this.#cursor.get();
        this.#recovered();
        break;
      } catch (err) {
        this.#fail(err);
        if (this.#stopped) return;
        await new Promise((r) => setTimeout(r, this.#retryMs));
      }
    }
    if (this.#stopped) return;
    this.#reader = this.#log.reader(this.#published + 1);
    this.#log.on('synced', this.#onSynced);
    this.#schedule(0);
  }

  stats(): PublisherStats {
    return {
      published: this.#published,
      logged: this.#log.position().lastSeq,
      events: this.#events,
      batches: this.#batches,
      stalled: this.#stalled,
      lastError: this.#lastError,
    };
  }

  /**
   * Stops reading. With `drainMs`, first publishes what the log holds, for at most that long (false: some is
   * left, and goes out at the next start). Idempotent.
   */
  async stop(drainMs = 0): Promise<boolean> {
    this.#log.off('synced', this.#onSynced);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    let drained = true;
    if (drainMs > 0 && this.#reader && !this.#stopped) {
      const deadline = Date.now() + drainMs;
      await this.#running;
      while (Date.now() < deadline && this.#published < this.#log.position().lastSeq) {
        await this.#flush();
        if (this.#stalled) await new Promise((r) => setTimeout(r, Math.min(this.#retryMs, Math.max(0, deadline - Date.now()))));
      }
      drained = this.#published >= this.#log.position().lastSeq;
    }
    this.#stopped = true;
    await this.#running;
    this.#reader?.close();
    this.#reader = null;
    return drained;
  }

  #schedule(ms: number): void {
    if (this.#stopped || this.#timer || !this.#reader) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#running) return void this.#running.then(() => this.#schedule(0));
      this.#running = this.#flush().finally(() => (this.#running = null));
    }, ms);
  }

  // Publishes until the log has nothing more synced, or the sink fails (then retries with backoff).
  async #flush(): Promise<void> {
    const chunk = this.#opts.batchMax * 16;
    for (;;) {
      if (this.#epoch !== this.#cursor.epoch() && !(await this.#resync())) return;
      const reader = this.#reader;
      if (!reader) return;
      if (this.#pending.length < chunk) this.#pending.push(...reader.read(chunk - this.#pending.length));
      if (this.#pending.length === 0) return;
      const events = this.#pending;
      try {
        const batches = this.#batchesOf(events);
        if (batches.length > 0) await this.#sink.addBatches(batches);
        const last = events.at(-1)?.seq ?? this.#published;
        await this.#cursor.set(last);
        this.#pending = [];
        this.#published = last;
        this.#events += events.length;
        this.#batches += batches.length;
        this.#recovered();
        this.#truncate(last);
      } catch (err) {
        this.#fail(err);
        this.#schedule(this.#retryMs);
        return;
      }
      if (this.#stopped) return;
    }
  }

  // After the store reconnected: if it holds an older cursor than ours, what was published after it is gone with
  // it, and is read from the log again (batches Redis still holds are not added twice: their ids are taken).
  async #resync(): Promise<boolean> {
    try {
      const epoch = this.#cursor.epoch();
      const stored = await this.#cursor.get();
      this.#epoch = epoch;
      if (stored < this.#published) {
        this.#opts.logger.log('warn', 'the queues lost published events; publishing them again', { from: stored + 1, to: this.#published });
        this.#reader?.close();
        this.#reader = this.#log.reader(stored + 1);
        this.#pending = [];
        this.#published = stored;
      }
      return true;
    } catch (err) {
      this.#fail(err);
      this.#schedule(this.#retryMs);
      return false;
    }
  }

  #batchesOf(events: readonly ChangeEvent[]): Array<{ service: string; events: ChangeEvent[] }> {
    const out: Array<{ service: string; events: ChangeEvent[] }> = [];
    for (const sub of this.#subs) {
      let batch: ChangeEvent[] = [];
      for (const ev of events) {
        if (!matches(sub, ev)) continue;
        batch.push(ev);
        if (batch.length === this.#opts.batchMax) {
          out.push({ service: sub.service, events: batch });
          batch = [];
        }
      }
      if (batch.length > 0) out.push({ service: sub.service, events: batch });
    }
    return out;
  }

  #recovered(): void {
    this.#retryMs = RETRY_MIN_MS;
    if (this.#stalled) this.#opts.logger.log('info', 'event publishing resumed', { published: this.#published });
    this.#stalled = false;
    this.#lastError = null;
  }

  #fail(err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    if (!this.#stalled || msg !== this.#lastError) {
      this.#opts.logger.log('warn', 'event publishing stalled; events wait in the log', { error: msg, published: this.#published });
    }
    this.#stalled = true;
    this.#lastError = msg;
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
  }

  // Segments go once what they hold has been published for truncateAfterMs: a Redis that fsyncs its AOF every
  // second may lose the last second, and the log must still hold it then.
  #truncate(seq: number): void {
    const now = Date.now();
    this.#truncations.push({ at: now, seq });
    let upTo = 0;
    while ((this.#truncations[0]?.at ?? now) <= now - this.#opts.truncateAfterMs) upTo = this.#truncations.shift()?.seq ?? upTo;
    if (upTo > 0) this.#log.truncate(upTo + 1);
  }
}

// What one job on a service's queue holds: a batch of change events, plus what earlier attempts learnt about
// them (which events are done, why the others failed). The producer writes it, the worker reads it back; what is
// read back from Redis is checked field by field first — a job another version wrote, or garbage, must fail
// cleanly instead of reaching a service's handler. See docs/queues.md for the format.
import { ConfigError, XenfsError } from '../errors.ts';
import { isDirectoryKind, isEventKind, type ChangeEvent, type EventKind } from './change-event.ts';

/**
 * The BullMQ job name of a batch, carrying the format's version: a worker refuses jobs named otherwise, so a
 * format change is a new name and never a silent misreading.
 */
export const BATCH_JOB_NAME = 'change-events/1';

/** Longest error message kept per failed event; a handler's message can be anything, Redis memory is not. */
export const MAX_FAILURE_MESSAGE = 1000;

/** How many failed events a job's failedReason spells out; the rest are counted (all are in `failures`). */
const MAX_LISTED_FAILURES = 20;

/** Service (queue) names: safe in Redis keys, log lines and URLs. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** One event that a handler failed, as kept on the job and reported. */
export interface EventFailure {
  seq: number;
  kind: EventKind;
  path: string;
  message: string;
  /** The error's `code` when it had a string one ('ENOENT', 'XENFS_ERR_…'). */
  code?: string;
}

/** A job's data. */
export interface BatchJobData {
  /** In `seq` order, at least one (a reconciliation's events share one seq). */
  events: ChangeEvent[];
  /** Indexes into `events` of those an earlier attempt handled: a retry runs only the others. */
  done?: number[];
  /** Why each event failed on the latest failed attempt. */
  failures?: EventFailure[];
}

/** A change event or a batch is malformed; `at` says where ('events[3].kind', 'name'). */
export class BadEventError extends XenfsError {
  readonly at: string;

  constructor(at: string, message: string) {
    super('XENFS_ERR_BAD_EVENT', `invalid batch: ${at}: ${message}`);
    this.at = at;
  }
}

/** A handler failed events of a batch. The message lists them (bounded); `failures` has every one. */
export class EventsFailedError extends XenfsError {
  readonly failures: EventFailure[];

  constructor(failures: EventFailure[], total: number) {
    const listed = failures.slice(0, MAX_LISTED_FAILURES).map(describeFailure);
    const more = failures.length - listed.length;
    if (more > 0) listed.push(`and ${more} more`);
    super('XENFS_ERR_EVENTS_FAILED', `${failures.length} of ${total} events failed: ${listed.join('; ')}`);
    this.failures = failures;
  }
}

function describeFailure(f: EventFailure): string {
  return `#${f.seq} ${f.kind} '${f.path}': ${f.message}`;
}

/** Checks a service name, which is also its queue's name; returns it. */
export function checkServiceName(service: string): string {
  if (typeof service !== 'string' || !SERVICE_NAME.test(service)) {
    throw new ConfigError('services', String(service), 'is not a service name (letters, digits, _ . -; at most 64)');
  }
  return service;
}

/**
 * The job id of a batch: `${first seq}-${last seq}`. Seqs are never reused, so the same id means the same
 * batch, and a producer replaying its log after a crash cannot add a batch twice while the first is in Redis.
 */
export function batchJobId(events: readonly ChangeEvent[]): string {
  const first = events[0];
  const last = events[events.length - 1];
  if (first === undefined || last === undefined) throw new BadEventError('events', 'a batch holds at least one event');
  return `${first.seq}-${last.seq}`;
}

/** The failure record of `event` failed by `err` (anything a handler produced, Error or not). */
export function failureOf(event: ChangeEvent, err: unknown): EventFailure {
  const message = err instanceof Error ? err.message : String(err);
  const failure: EventFailure = {
    seq: event.seq,
    kind: event.kind,
    path: event.path,
    message: message.length > MAX_FAILURE_MESSAGE ? `${message.slice(0, MAX_FAILURE_MESSAGE)}…` : message,
  };
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length <= 64) failure.code = code;
  return failure;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Obj, key: string, at: string, nonEmpty: boolean): string {
  const v = o[key];
  if (typeof v !== 'string' || (nonEmpty && v === '')) {
    throw new BadEventError(`${at}.${key}`, nonEmpty ? 'must be a non-empty string' : 'must be a string');
  }
  return v;
}

function num(o: Obj, key: string, at: string, integer: boolean): number {
  const v = o[key];
  const ok = integer ? Number.isSafeInteger(v) && (v as number) >= 0 : Number.isFinite(v);
  if (!ok) throw new BadEventError(`${at}.${key}`, integer ? 'must be an integer >= 0 below 2^53' : 'must be a finite number');
  return v as number;
}

/**
 * An export-relative path as ChangeEvent defines it: '' (the root) or '/'-separated non-empty components, none
 * of them '.' or '..', no NUL. Enforced because handlers join it to an export root: a path from Redis must not
 * climb out of it.
 */
function relPath(o: Obj, key: string, at: string): string {
  const p = str(o, key, at, false);
  if (p === '') return p;
  if (p.includes('\0')) throw new BadEventError(`${at}.${key}`, 'must not contain NUL');
  for (const c of p.split('/')) {
    if (c === '' || c === '.' || c === '..') {
      throw new BadEventError(`${at}.${key}`, `${JSON.stringify(p)} is not a relative path without '.', '..' or empty components`);
    }
  }
  return p;
}

/**
 * A ChangeEvent from untrusted data: every field checked, and a fresh object holding only ChangeEvent's fields
 * returned (unknown fields are dropped, so a handler sees exactly the type it was promised).
 */
export function parseChangeEvent(v: unknown, at = 'event'): ChangeEvent {
  if (!isObj(v)) throw new BadEventError(at, 'must be an object');
  const kind = v.kind;
  if (!isEventKind(kind)) throw new BadEventError(`${at}.kind`, `${JSON.stringify(kind)} is not an event kind`);
  const dir = v.dir;
  if (typeof dir !== 'boolean') throw new BadEventError(`${at}.dir`, 'must be true or false');
  if (isDirectoryKind(kind) && !dir) throw new BadEventError(`${at}.dir`, `must be true for ${kind}`);
  const origin = v.origin;
  if (origin !== 'guest' && origin !== 'host' && origin !== 'reconcile') {
    throw new BadEventError(`${at}.origin`, "must be 'guest', 'host' or 'reconcile'");
  }
  const event: ChangeEvent = {
    seq: num(v, 'seq', at, true),
    guest: str(v, 'guest', at, true),
    export: str(v, 'export', at, true),
    kind,
    path: relPath(v, 'path', at),
    dir,
    size: num(v, 'size', at, true),
    mtime: num(v, 'mtime', at, false),
    ino: num(v, 'ino', at, true),
    time: num(v, 'time', at, false),
    origin,
  };
  if (kind === 'renamed') event.oldPath = relPath(v, 'oldPath', at);
  else if (v.oldPath !== undefined) throw new BadEventError(`${at}.oldPath`, `only a renamed event has one, not ${kind}`);
  return event;
}

/** Checks a list of events as a batch: non-empty, each valid, seqs never decreasing. */
export function parseEvents(v: unknown, at = 'events'): ChangeEvent[] {
  if (!Array.isArray(v) || v.length === 0) throw new BadEventError(at, 'must be a non-empty array of events');
  const events = v.map((e, i) => parseChangeEvent(e, `${at}[${i}]`));
  for (let i = 1; i < events.length; i++) {
    if ((events[i] as ChangeEvent).seq < (events[i - 1] as ChangeEvent).seq) {
      throw new BadEventError(`${at}[${i}].seq`, 'seqs must not decrease within a batch');
    }
  }
  return events;
}

function parseFailure(v: unknown, at: string): EventFailure {
  if (!isObj(v)) throw new BadEventError(at, 'must be an object');
  const kind = v.kind;
  if (!isEventKind(kind)) throw new BadEventError(`${at}.kind`, `${JSON.stringify(kind)} is not an event kind`);
  const f: EventFailure = {
    seq: num(v, 'seq', at, true),
    kind,
    path: str(v, 'path', at, false),
    message: str(v, 'message', at, false),
  };
  if (v.code !== undefined) f.code = str(v, 'code', at, true);
  return f;
}

/**
 * A job's name and data, checked: the name must be BATCH_JOB_NAME, the data a BatchJobData whose `done`
 * entries are distinct indexes of its events. Throws BadEventError saying where it is wrong.
 */
export function parseBatchJob(name: unknown, data: unknown): BatchJobData {
  if (name !== BATCH_JOB_NAME) {
    throw new BadEventError('name', `job name ${JSON.stringify(name)} is not ${JSON.stringify(BATCH_JOB_NAME)} (another version wrote it?)`);
  }
  if (!isObj(data)) throw new BadEventError('data', 'must be an object');
  const events = parseEvents(data.events, 'events');
  const batch: BatchJobData = { events };
  if (data.done !== undefined) {
    if (!Array.isArray(data.done)) throw new BadEventError('done', 'must be an array of event indexes');
    const seen = new Set<number>();
    batch.done = data.done.map((x, i) => {
      if (!Number.isInteger(x) || (x as number) < 0 || (x as number) >= events.length || seen.has(x as number)) {
        throw new BadEventError(`done[${i}]`, 'is not the index of an event of this batch, or repeats one');
      }
      seen.add(x as number);
      return x as number;
    });
  }
  if (data.failures !== undefined) {
    if (!Array.isArray(data.failures)) throw new BadEventError('failures', 'must be an array');
    batch.failures = data.failures.map((f, i) => parseFailure(f, `failures[${i}]`));
  }
  return batch;
}

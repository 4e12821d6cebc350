// What bench:events learns from the consumers: one record per event handled — its seq, when it was produced, when
// its handler started (ms since the epoch) and its origin — written by the XenFS bench service
// (bench/services/latency) and by the BullMQ peer's worker in the same format, and the figures computed from them.
import fs from 'node:fs';
import { ORIGINS, RECORD_FIELDS } from './services/latency/index.ts';

/**
 * The wall clock, in ms since the epoch with sub-millisecond resolution, comparable across processes (each
 * process's timeOrigin is read from the system clock at its start; measured here, it stays within 0.01 ms of
 * Date.now() over a minute). Date.now() alone would round every reading down to a whole millisecond.
 */
export function wall(): number {
  return performance.timeOrigin + performance.now();
}

/** Records of handled events, columns apart. */
export interface Records {
  seq: Float64Array;
  /** When the event was produced: XenFS's `event.time` (dom0 logged it), the peer's time before `queue.add`. */
  time: Float64Array;
  /** When the handler started (for XenFS, the batch's handler). */
  start: Float64Array;
  /** Index into ORIGINS (the peer's events are all 'guest', 0). */
  origin: Uint8Array;
}

/** The records in `file` (float64s in native byte order, RECORD_FIELDS per event). */
export function readRecords(file: string): Records {
  // Copied: a small file's Buffer may sit in Node's pool at an offset a Float64Array cannot start at.
  const bytes = new Uint8Array(fs.readFileSync(file));
  const n = Math.floor(bytes.byteLength / 8 / RECORD_FIELDS);
  const all = new Float64Array(bytes.buffer, 0, n * RECORD_FIELDS);
  const r: Records = { seq: new Float64Array(n), time: new Float64Array(n), start: new Float64Array(n), origin: new Uint8Array(n) };
  for (let i = 0; i < n; i++) {
    r.seq[i] = all[i * RECORD_FIELDS] as number;
    r.time[i] = all[i * RECORD_FIELDS + 1] as number;
    r.start[i] = all[i * RECORD_FIELDS + 2] as number;
    r.origin[i] = all[i * RECORD_FIELDS + 3] as number;
  }
  return r;
}

/** The records of one origin. */
export function onlyOrigin(r: Records, origin: (typeof ORIGINS)[number]): Records {
  const code = ORIGINS.indexOf(origin);
  const keep = (_: number, i: number): boolean => r.origin[i] === code;
  return { seq: r.seq.filter(keep), time: r.time.filter(keep), start: r.start.filter(keep), origin: r.origin.filter(keep) };
}

/** How many records there are of each origin, by name, of those whose handler started at `from` or later. */
export function byOrigin(r: Records, from: number): Record<string, number> {
  const out: Record<string, number> = {};
  r.origin.forEach((o, i) => {
    if ((r.start[i] as number) < from) return;
    const name = ORIGINS[o] ?? `origin ${o}`;
    out[name] = (out[name] ?? 0) + 1;
  });
  return out;
}

/** Appends records to a file, RECORD_FIELDS at a time, in blocks (one write per `block` records). */
export class RecordWriter {
  readonly #fd: number;
  readonly #buf: Float64Array;
  #n = 0;
  count = 0;

  constructor(file: string, block = 1024) {
    this.#fd = fs.openSync(file, 'a', 0o600);
    this.#buf = new Float64Array(block * RECORD_FIELDS);
  }

  /** One event's record; its origin is a guest's (0). */
  add(seq: number, time: number, start: number): void {
    const at = this.#n * RECORD_FIELDS;
    this.#buf[at] = seq;
    this.#buf[at + 1] = time;
    this.#buf[at + 2] = start;
    this.#buf[at + 3] = 0;
    this.#n++;
    this.count++;
    if (this.#n * RECORD_FIELDS === this.#buf.length) this.flush();
  }

  flush(): void {
    if (this.#n > 0) fs.writeSync(this.#fd, new Uint8Array(this.#buf.buffer, 0, this.#n * RECORD_FIELDS * 8));
    this.#n = 0;
  }

  close(): void {
    this.flush();
    fs.closeSync(this.#fd);
  }
}

/** Handler starts within [from, to), per second. */
export function handledPerSecond(r: Records, from: number, to: number): number {
  let n = 0;
  for (const s of r.start) if (s >= from && s < to) n++;
  return (n * 1000) / (to - from);
}

/**
 * How fast a backlog drained once its queue was resumed at `from`: the events whose handler started in
 * [from, last start), per second of that span. The last start's events are left out: the span ends as their
 * handling begins.
 */
export function drainPerSecond(r: Records, from: number): { events: number; perSecond: number } {
  let last = -Infinity;
  for (const s of r.start) if (s >= from && s > last) last = s;
  let n = 0;
  for (const s of r.start) if (s >= from && s < last) n++;
  return { events: n, perSecond: last > from ? (n * 1000) / (last - from) : 0 };
}

export interface Latency {
  /** Events produced within the span. */
  events: number;
  /** Those events per second of the span: the rate actually achieved. */
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
}

/** Handler start minus production time, in ms, of the events produced within [from, to). */
export function latency(r: Records, from: number, to: number): Latency {
  const d: number[] = [];
  for (let i = 0; i < r.time.length; i++) {
    const t = r.time[i] as number;
    if (t >= from && t < to) d.push((r.start[i] as number) - t);
  }
  d.sort((a, b) => a - b);
  return {
    events: d.length,
    perSecond: (d.length * 1000) / (to - from),
    p50: percentile(d, 0.5),
    p99: percentile(d, 0.99),
    max: d.at(-1) ?? NaN,
  };
}

/** The nearest-rank percentile `p` (0..1] of ascending `sorted`; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

// The change-event log of a state directory (docs/events.md): where every event is on disk before anything
// publishes it. Guests' sessions append natively (an Engine given `engineEvents()`); the host watcher appends
// through append(); readers take synced events in seq order from any point still kept.
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { EventLogError } from '../errors.ts';
import { EventLogFile, type EventLogPosition } from '../xen/event-log.ts';
import { EVENT_KINDS, type ChangeEvent, type NewEvent } from './change-event.ts';
import { decodeRecord } from './log-record.ts';

export interface EventLogOptions {
  /** A new segment file once the current one passes this size (default 64 MiB). */
  segmentBytes?: number;
  /** Group commit: appends share one fdatasync at most this often (default 5 ms). */
  syncIntervalMs?: number;
}

interface EventLogEvents {
  /** New events reached the disk and can be read. */
  synced: [];
}

const SEGMENT_RE = /^(\d{20})\.xev$/;
const READ_CHUNK = 4 << 20;

/** The first seqs of the segment files in `dir`, ascending. */
export function listSegments(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .map((n) => SEGMENT_RE.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export function segmentPath(dir: string, first: number): string {
  return path.join(dir, `${String(first).padStart(20, '0')}.xev`);
}

export class EventLog extends EventEmitter<EventLogEvents> {
  readonly dir: string;
  readonly #file: EventLogFile;

  /** Opens (creating, recovering a torn tail) the log in `dir`. One owner per directory. */
  constructor(dir: string, options: EventLogOptions = {}) {
    super();
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const opts = { segmentBytes: options.segmentBytes ?? 64 << 20, syncIntervalMs: options.syncIntervalMs ?? 5 };
    this.#file = new EventLogFile(dir, opts, () => {
      try {
        this.emit('synced');
      } catch (err) {
        // A listener's error is the listener's bug: report it as uncaught, outside the native callback.
        setImmediate(() => {
          throw err;
        });
      }
    });
  }

  /** Appends an event (the host watcher's; guests' come natively) and returns its seq. Throws when it failed. */
  append(ev: NewEvent): number {
    return this.#file.append({
      kind: EVENT_KINDS.indexOf(ev.kind),
      origin: ev.origin === 'host' ? 1 : 0,
      dir: ev.dir,
      guest: ev.guest,
      export: ev.export,
      path: ev.path,
      oldPath: ev.oldPath ?? '',
      size: ev.size,
      mtime: ev.mtime,
      ino: ev.ino,
    });
  }

  /** How far records are synced: a reader sees events up to `lastSeq`. */
  position(): EventLogPosition {
    return this.#file.position();
  }

  /** Appends that failed since the log was opened (changes only reconciliation will find). */
  failed(): number {
    return this.#file.failed();
  }

  /** The writing side, for the server: guests' sessions append to it natively (XenfsServer's `eventLog`). */
  get file(): EventLogFile {
    return this.#file;
  }

  /** A reader of synced events from `fromSeq` on (1: from the oldest kept). */
  reader(fromSeq: number): EventLogReader {
    return new EventLogReader(this.dir, () => this.#file.position(), fromSeq);
  }

  /**
   * Deletes the segments holding only events before `seq` (those every consumer has taken), never the current
   * one, whose name says where numbering goes on. Returns how many were deleted.
   */
  truncate(seq: number): number {
    const segs = listSegments(this.dir);
    const current = this.#file.position().segment;
    let removed = 0;
    for (let i = 0; i + 1 < segs.length; i++) {
      const next = segs[i + 1] ?? Infinity;
      const first = segs[i] ?? Infinity;
      if (next > seq || first >= current) break;
      fs.rmSync(segmentPath(this.dir, first), { force: true });
      removed++;
    }
    return removed;
  }

  /** Syncs what was appended and closes; appends fail from then on. Idempotent. */
  close(): void {
    this.#file.close();
  }
}

/**
 * Reads synced events in seq order. `position` says how far the writer has synced; a reader never reads past it,
 * so a half-written record is never seen. Not thread-shared: one reader per consumer.
 */
export class EventLogReader {
  readonly #dir: string;
  readonly #position: () => EventLogPosition;
  #nextSeq: number;
  #segment = -1; // first seq of the segment being read, -1 before the first read
  #offset = 0;
  #fd = -1;
  #skipped = 0;

  constructor(dir: string, position: () => EventLogPosition, fromSeq: number) {
    this.#dir = dir;
    this.#position = position;
    this.#nextSeq = Math.max(1, fromSeq);
  }

  /** The seq the next event read will have (or a later one, if segments were deleted meanwhile). */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Events that were asked for but had been deleted with their segment (truncate) before they were read. */
  get skipped(): number {
    return this.#skipped;
  }

  /** Up to `max` synced events from nextSeq on; [] when none are synced yet. */
  read(max: number): ChangeEvent[] {
    const out: ChangeEvent[] = [];
    const pos = this.#position();
    while (out.length < max) {
      if (this.#fd < 0 && !this.#open()) break;
      const file = segmentPath(this.#dir, this.#segment);
      const end = this.#segment < pos.segment ? fs.fstatSync(this.#fd).size : pos.offset;
      if (this.#offset >= end) {
        if (this.#segment >= pos.segment || !this.#advance()) break;
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, end - this.#offset));
      const got = fs.readSync(this.#fd, buf, 0, buf.length, this.#offset);
      const chunk = buf.subarray(0, got);
      let at = 0;
      while (out.length < max && at < chunk.length) {
        const r = decodeRecord(chunk, at);
        if (r.kind === 'corrupt') throw new EventLogError(file, this.#offset + at, r.reason);
        if (r.kind === 'partial') {
          // A record cut by the chunk is read whole next time round; one cut by a synced end is damage.
          if (this.#offset + at + (chunk.length - at) >= end) throw new EventLogError(file, this.#offset + at, 'truncated record');
          break;
        }
        at += r.length;
        if (r.event.seq >= this.#nextSeq) {
          out.push(r.event);
          this.#nextSeq = r.event.seq + 1;
        }
      }
      this.#offset += at;
      if (at === 0 && got === 0) break;
    }
    return out;
  }

  close(): void {
    if (this.#fd >= 0) fs.closeSync(this.#fd);
    this.#fd = -1;
  }

  // The segment holding nextSeq: the last one starting at or before it, or the oldest kept when it was deleted.
  #open(): boolean {
    const segs = listSegments(this.#dir);
    if (segs.length === 0) return false;
    let pick = segs[0] ?? 0;
    for (const s of segs) if (s <= this.#nextSeq) pick = s;
    if (pick > this.#nextSeq) {
      this.#skipped += pick - this.#nextSeq;
      this.#nextSeq = pick;
    }
    return this.#openSegment(pick);
  }

  #advance(): boolean {
    const next = listSegments(this.#dir).find((s) => s > this.#segment);
    if (next === undefined) return false;
    this.close();
    return this.#openSegment(next);
  }

  #openSegment(first: number): boolean {
    try {
      this.#fd = fs.openSync(segmentPath(this.#dir, first), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // truncated under us: found again next read
      throw e;
    }
    this.#segment = first;
    this.#offset = 0;
    return true;
  }
}

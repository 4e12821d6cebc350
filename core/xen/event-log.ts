// The change-event log's writing side (native/src/event-log.hpp): appends and the position up to which records
// are synced. Reading the segments is core/events' job; this module only owns the native handle.
import { native, type NativeEventLog, type NativeEventPosition, type NativeEventRecord } from './native.ts';

export type EventLogRecord = NativeEventRecord;
export type EventLogPosition = NativeEventPosition;

export interface EventLogFileOptions {
  /** A new segment file starts once the current one has passed this many bytes. */
  segmentBytes: number;
  /** Appends are fdatasync()ed together at most this often (group commit); 0 syncs after every wake-up. */
  syncIntervalMs: number;
}

/** The open log of one state directory. One per directory and process: the native side does not lock the files. */
export class EventLogFile {
  readonly dir: string;
  readonly #native: NativeEventLog;
  #closed = false;

  /** Opens, creating or recovering, the log in `dir`. `onSynced` runs after new records reached the disk. */
  constructor(dir: string, options: EventLogFileOptions, onSynced: () => void) {
    this.dir = dir;
    this.#native = new native.EventLog(dir, options, onSynced);
  }

  /** Appends one record and returns its seq. Throws an Error carrying `errno` when the log could not take it. */
  append(record: EventLogRecord): number {
    return this.#native.append(record);
  }

  position(): EventLogPosition {
    return this.#native.position();
  }

  /** Appends that failed since the log was opened. */
  failed(): number {
    return this.#native.failed();
  }

  /** A last fdatasync; appends fail from then on. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  /** The native handle, for an Engine that reports into this log (core/xen/engine.ts only). */
  static nativeOf(log: EventLogFile): NativeEventLog {
    return log.#native;
  }
}

// What the dom0 server tells services about guests' files: one ChangeEvent per mutation, numbered in the order
// it was recorded in the event log. Every consumer (queues, plugins, reconciliation, the dashboard) speaks this
// type; nothing downstream sees the wire protocol or the log's bytes.

/** The kinds of change, one per event. */
export const EVENT_KINDS = [
  'created', // a file, symlink or special file appeared (create, mknod, symlink, link)
  'modified', // a file's data changed: once per close or fsync after writing, not once per write
  'deleted', // a non-directory name went away
  'renamed', // `oldPath` became `path` (a file or a directory; a directory's contents move with it unannounced)
  'metadata', // mode, owner, times, size by truncate, or extended attributes changed
  'dirCreated',
  'dirDeleted',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * Where an event came from: a guest through XenFS, a change made on dom0 directly (outside XenFS), or a
 * reconciliation pass that found a difference between an export and what one service recorded (only that
 * service gets it; it may repeat an event the service had not handled yet when it stopped).
 */
export type EventOrigin = 'guest' | 'host' | 'reconcile';

export interface ChangeEvent {
  /**
   * Position in the event log: strictly increasing, never reused for a state directory. A reconciliation's
   * events all carry the log's position when the pass began.
   */
  seq: number;
  /** The guest the export belongs to (for an export shared by several guests, the one that made the change). */
  guest: string;
  /** The export's name in the server's config. */
  export: string;
  kind: EventKind;
  /** Relative to the export root, '/'-separated, no leading '/'; '' is the root itself. */
  path: string;
  /** For `renamed`: the path before. */
  oldPath?: string;
  /** Whether `path` names a directory (always for dirCreated/dirDeleted; a renamed or changed directory too). */
  dir: boolean;
  /** Bytes, after the change (before it, for deletions). */
  size: number;
  /** Milliseconds since the epoch, with sub-millisecond precision where the filesystem has it. */
  mtime: number;
  /** The host inode number (as a number: dom0's inode numbers stay below 2^53 on every filesystem we run on). */
  ino: number;
  /** Wall-clock time the event was recorded, in milliseconds since the epoch. */
  time: number;
  origin: EventOrigin;
}

/** An event before the log numbers it: what the server and the out-of-band watcher hand to the log. */
export type NewEvent = Omit<ChangeEvent, 'seq'>;

const KIND_SET: ReadonlySet<string> = new Set(EVENT_KINDS);

export function isEventKind(v: unknown): v is EventKind {
  return typeof v === 'string' && KIND_SET.has(v);
}

/** Kinds about directories: their paths name directories, everything else names non-directories. */
export function isDirectoryKind(kind: EventKind): boolean {
  return kind === 'dirCreated' || kind === 'dirDeleted';
}

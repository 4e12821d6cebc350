// The contract between dom0 and a plugin service (indexer, scanner, backup, or one of your own): what a service
// module exports, what it is handed, and what it answers. Services import this through core/index.ts only.
// docs/plugins.md walks through it with a complete example.
import type { Readable } from 'node:stream';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from 'pino';
import type { ChangeEvent, EventKind } from '../events/change-event.ts';
import type { ConfigSchema } from './service-config.ts';

/** A file or directory inside a guest's export: `path` relative to the export's root, '/'-separated; '' is the root. */
export interface GuestTarget {
  guest: string;
  /** The export's name in the guest's config. */
  export: string;
  path: string;
}

export type GuestFileType = 'file' | 'directory' | 'symlink' | 'other';

/** What a GuestFileReader saw of a file, taken from the open descriptor (never through a symlink). */
export interface GuestFileStat {
  type: GuestFileType;
  size: number;
  /** Milliseconds since the epoch, with the filesystem's sub-millisecond precision. */
  mtimeMs: number;
  ctimeMs: number;
  /** The host inode number (dom0's, below 2^53). */
  ino: number;
  /** Permission bits and file type, as st_mode. */
  mode: number;
}

export interface GuestDirEntry {
  name: string;
  type: GuestFileType;
}

export interface ReadOptions {
  /** Largest file read; a bigger one fails with LimitError before a byte is read. */
  maxBytes: number;
  /** The name of that limit in the LimitError: the service's config key, e.g. 'maxFileBytes' (default 'maxBytes'). */
  limit?: string;
}

/**
 * Read-only access to guests' files on dom0, confined to each export: a path never leaves its export, whatever
 * symlinks, `..` or renames racing the read say, and a final symlink is never followed. Failures are
 * ErrnoError naming the target as `guest:export/path` (EACCES outside the export, ELOOP for a final symlink,
 * ENOENT, EISDIR/EINVAL for what is not a regular file) or LimitError.
 */
export interface GuestFileReader {
  /** The file itself (lstat: a symlink is reported, not followed). */
  stat(target: GuestTarget): Promise<GuestFileStat>;
  /**
   * A regular file's whole content, with the stat it matches: the size, mtime and ctime did not change while it
   * was read. A file that keeps changing (being written right now) fails after a few tries with EAGAIN; the
   * event its writer's close produces is the moment to read it.
   */
  readFile(target: GuestTarget, options: ReadOptions): Promise<{ data: Buffer; stat: GuestFileStat }>;
  /**
   * A regular file as a stream, for files too big to hold. The stream ends with an EAGAIN error instead of its
   * end when the file changed while it was read, so a consumer must not commit what it read until 'end'.
   * The file stays open until the stream ends or is destroyed: consume it or destroy it.
   */
  createReadStream(target: GuestTarget, options: ReadOptions): Promise<{ stream: Readable; stat: GuestFileStat }>;
  /** A directory's entries (without '.' and '..'), at most `maxEntries` (default 65536) or LimitError. */
  readdir(target: GuestTarget, options?: { maxEntries?: number }): Promise<GuestDirEntry[]>;
}

export interface Denial {
  target: GuestTarget;
  reason: string;
  /** When it was denied, in milliseconds since the epoch. */
  since: number;
}

/**
 * The server's access policy, as a service may change it (the scanner's quarantine). Interface only: the
 * server's side is not written yet.
 *
 * While a file is denied, a guest opening it (any flags, and exec) gets EACCES at open; its name still shows in
 * directory listings and stat still answers, so a guest sees a file it may not open rather than a vanished one.
 * Handles the guest opened before the denial are not revoked (their pages may already be mapped). A denial
 * holds the file, not just the name: renaming or linking the file does not escape it. A denied directory
 * denies opening anything under it. Denials are kept by the server in its state dir and survive restarts.
 * Each service sees and lifts only its own denials; a file two services deny stays denied until both allow it.
 */
export interface PolicyHooks {
  /** Denies guests' opens of `target` from now on; resolves once the server enforces it. `reason` is shown to admins. */
  deny(target: GuestTarget, reason: string): Promise<void>;
  /** Lifts this service's denial of `target` (nothing if there was none). */
  allow(target: GuestTarget): Promise<void>;
  /** This service's denials in force. */
  denied(): Promise<Denial[]>;
}

/**
 * Ends a quiesce. Resolves once guests' mutating calls proceed again. Rejects with LimitError
 * ('maxQuiesceMs') if the server had already ended the quiesce on its own because it lasted too long: what was
 * copied in the meantime may then be inconsistent and should be taken again.
 */
export type Release = () => Promise<void>;

/**
 * Consistent points in time for backups. Interface only: the server's side is not written yet.
 *
 * While an export is quiesced, guests' reads go on as usual; their mutating calls on that export (write through
 * dom0, create, mkdir, rename, unlink, setattr, fsync, and opening for write) wait. The wait is bounded: after the
 * server's limit `maxQuiesceMs` the quiesce ends by itself, so a backup never leaves a guest paused (the late
 * Release then rejects). `quiesce` resolves once mutations already in flight have finished and the export's
 * data is on disk. An export shared by several guests is quiesced for all of them.
 */
export interface SnapshotHooks {
  quiesce(guest: string, exportName: string): Promise<Release>;
}

/** A service's settings, after its configSchema filled in defaults. */
export type ServiceSettings = Readonly<Record<string, unknown>>;

/**
 * What a service is handed: the same object for start, every handler call, health and stop. Owned by the
 * runtime; a service must not keep using it after stop resolves.
 */
export interface ServiceContext<C extends object = ServiceSettings> {
  readonly name: string;
  /** `services.<name>.config`, checked against the definition's configSchema with defaults filled in; frozen. */
  readonly config: C;
  /** pino logger with `{ service: name }` bound. */
  readonly logger: Logger;
  /** The service's own directory, `<stateDir>/services/<name>/` (mode 0700); nothing else there is its. */
  readonly stateDir: string;
  /**
   * The service's SQLite database (`state.db` in stateDir; WAL, busy timeout set), opened at the first call and
   * closed by the runtime after stop. Never close it yourself.
   */
  db(): BetterSqlite3.Database;
  readonly reader: GuestFileReader;
  readonly policy: PolicyHooks;
  readonly snapshots: SnapshotHooks;
  /** Aborted when the service is being stopped: long work should check it and give up. */
  readonly signal: AbortSignal;
}

/**
 * What became of one event. Returning nothing from `handle` means done; throwing means retry. A retried event
 * is handed again after `backoffMs` (doubling), up to `attempts` tries; after that it counts as failed.
 * Delivery is at least once: a handler must be idempotent (the same event twice leaves the same state).
 */
export type EventOutcome =
  | { status: 'done' }
  | { status: 'skipped'; reason: string }
  | { status: 'retry'; reason: string }
  | { status: 'failed'; reason: string };

/** Which events reach the service; an absent key means all. Events are filtered before they are queued. */
export interface ServiceSubscriptions {
  kinds?: readonly EventKind[];
  guests?: readonly string[];
  exports?: readonly string[];
}

export interface ServiceHealth {
  healthy: boolean;
  detail?: string;
}

interface ServiceDefinitionBase<C extends object> {
  /** a-z, 0-9 and '-', starting with a letter: the key under `services` in the config. */
  name: string;
  version?: string;
  subscriptions: ServiceSubscriptions;
  /** JSON Schema (the subset in service-config.ts) of `services.<name>.config`; type 'object'. */
  configSchema: ConfigSchema;
  /** Before the first event; the service is not started if it throws. */
  start?(ctx: ServiceContext<C>): Promise<void> | void;
  /** After the last event (ctx.signal is already aborted); reverse order of start. */
  stop?(ctx: ServiceContext<C>): Promise<void> | void;
  /** Asked by the dashboard and `xenfs status`; should answer fast, without waiting on events. */
  health?(ctx: ServiceContext<C>): Promise<ServiceHealth> | ServiceHealth;
}

/** A service module's default export. Exactly one of `handle` (one event at a time) or `handleBatch`. */
export type ServiceDefinition<C extends object = ServiceSettings> = ServiceDefinitionBase<C> & (
  | {
    /** One event; its outcome (nothing = done; a throw = retry). */
    handle(event: ChangeEvent, ctx: ServiceContext<C>): Promise<EventOutcome | void> | EventOutcome | void;
    handleBatch?: never;
  }
  | {
    /**
     * Up to `events.batchMax` events in log order; one outcome per event, in the same order (a wrong count
     * fails the whole batch). A throw retries the whole batch.
     */
    handleBatch(events: readonly ChangeEvent[], ctx: ServiceContext<C>): Promise<EventOutcome[]> | EventOutcome[];
    handle?: never;
  });

/** Types a service definition; `C` is the shape of its settings (what its configSchema describes). */
export function defineService<C extends object = ServiceSettings>(def: ServiceDefinition<C>): ServiceDefinition<C> {
  return def;
}

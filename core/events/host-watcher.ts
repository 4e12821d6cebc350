// Changes made on dom0 directly, outside XenFS (an administrator editing files in /srv/vm1), turned into change
// events with origin 'host'. chokidar watches each export root; observations on a name are held until the name
// has been quiet for `settleMs`, then one lstat decides what they amount to (host-change.ts), the server's own
// changes are dropped as echoes (echo-filter.ts), and one event goes out per guest export having that root.
//
// What it does not do: report renames (inotify's rename pairs are not exposed by chokidar, so a rename is
// 'deleted' or 'dirDeleted' of the old name and 'created'/'dirCreated' of the new one and of everything under
// it); report the state that existed before watching began (ignoreInitial: that is reconciliation's job, and so
// is whatever happens while a watch cannot be placed); follow symlinks (a link is reported as itself, and
// nothing outside a root is ever watched or reported); report mode or owner changes of directories.
import { EventEmitter } from 'node:events';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { watch } from 'chokidar';
import type { FSWatcher } from 'chokidar';
import { ErrnoError, LimitError, XenfsError, errnoNumber } from '../errors.ts';
import { type Logger, silentLogger } from '../util/log.ts';
import type { ChangeEvent, NewEvent } from './change-event.ts';
import { EchoFilter, expectedState } from './echo-filter.ts';
import { type FileState, type StatState, lstatState, relativeTo } from './file-state.ts';
import { type HostChange, type Observation, hostChanges } from './host-change.ts';

/** One guest export to watch: `root` is its directory on dom0. Several may share a root. */
export interface WatchedExport {
  guest: string;
  export: string;
  root: string;
}

export interface HostWatcherOptions {
  exports: readonly WatchedExport[];
  /** Names to leave alone (the server's state files inside an export): `path` relative to `root`, '/'-separated. */
  ignore?: (path: string, root: string) => boolean;
  /** Quiet time after the last observation on a name before it is reported, in ms (default 100). */
  settleMs?: number;
  /** Longest a name that never goes quiet (a log being appended to) is held before it is reported (default 1000). */
  maxHoldMs?: number;
  /** How long a server event suppresses its echo, in ms (default 2000). */
  echoWindowMs?: number;
  /** Names whose last stat is kept to tell 'metadata' from 'modified' (default 65536); the oldest go first. */
  maxTracked?: number;
  /** Server events remembered for echo suppression at once (default 100000). */
  maxEchoNotes?: number;
  logger?: Logger;
}

/** A directory that could not be watched: changes below it go unseen until reconciliation. */
export interface HostWatchError {
  /** The export root (real path) the failure is under. */
  root: string;
  /** Relative to `root`. */
  path: string;
  /** LimitError('fs.inotify.max_user_watches') when inotify ran out of watches; ErrnoError otherwise. */
  error: XenfsError;
}

export interface HostWatcherEvents {
  event: [ev: NewEvent];
  watchError: [err: HostWatchError];
}

const DEFAULTS = { settleMs: 100, maxHoldMs: 1000, echoWindowMs: 2000, maxTracked: 65536, maxEchoNotes: 100_000 };

interface RootGroup {
  id: number;
  /** Real path: every name reported is inside it. */
  root: string;
  exports: Array<{ guest: string; export: string }>;
  watcher: FSWatcher | undefined;
  logged: Set<string>;
}

interface Pending {
  group: RootGroup;
  rel: string;
  first: Observation;
  removedDir: boolean;
  /** performance.now() after which the name counts as settled. */
  due: number;
  /** performance.now() by which it is reported even if still busy. */
  deadline: number;
  /** Times the deadline was pushed back because a guest kept changing the name through the server. */
  extended: number;
}

// A name a guest keeps changing through the server (a log it appends to) never goes quiet, and what the disk shows
// at any moment is ahead of the server's last event (its next close is still to come): reporting it at the
// deadline would be an echo. Its deadline moves back while the server's notes keep coming, up to this many times.
const MAX_EXTENSIONS = 30;

const LSTAT_BATCH = 256;

const OBSERVATIONS: ReadonlySet<string> = new Set<Observation>(['add', 'addDir', 'change', 'unlink', 'unlinkDir']);

/**
 * Watches export roots for changes made outside XenFS. Events come out through `on('event')`, in the order
 * the names settled (a directory's creation before what is created in it); failures to place a watch through
 * `on('watchError')` (also logged), never as a thrown error. `ready` resolves once every root is watched.
 * `close()` stops everything, drops changes that have not settled yet, and may be called any number of times.
 */
export class HostWatcher extends EventEmitter<HostWatcherEvents> {
  /** Resolves when the initial scan of every root is done; changes after that are reported. */
  readonly ready: Promise<void>;
  readonly #groups: RootGroup[] = [];
  readonly #byExport = new Map<string, RootGroup>();
  readonly #ignore: ((path: string, root: string) => boolean) | undefined;
  readonly #settleMs: number;
  readonly #maxHoldMs: number;
  readonly #maxTracked: number;
  readonly #log: Logger;
  readonly #echoes: EchoFilter;
  readonly #pending = new Map<string, Pending>();
  // What was last seen of each name, by group and path; insertion order is recency (see #track).
  readonly #seen = new Map<string, FileState | StatState>();
  readonly #readyWaiters: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing = false;
  #closing: Promise<void> | undefined;

  constructor(options: HostWatcherOptions) {
    super();
    this.#ignore = options.ignore;
    this.#settleMs = options.settleMs ?? DEFAULTS.settleMs;
    this.#maxHoldMs = options.maxHoldMs ?? DEFAULTS.maxHoldMs;
    this.#maxTracked = options.maxTracked ?? DEFAULTS.maxTracked;
    this.#log = options.logger ?? silentLogger;
    this.#echoes = new EchoFilter({
      windowMs: options.echoWindowMs ?? DEFAULTS.echoWindowMs,
      maxNotes: options.maxEchoNotes ?? DEFAULTS.maxEchoNotes,
    });
    const ready: Array<Promise<void>> = [];
    for (const ex of options.exports) {
      const group = this.#groupFor(ex);
      if (group === undefined) continue;
      this.#byExport.set(exportKey(ex.guest, ex.export), group);
      if (group.watcher === undefined) ready.push(this.#start(group));
    }
    this.ready = Promise.all(ready).then(() => undefined);
  }

  /**
   * Tell the watcher about an event the server emitted, so that its echo on disk is not reported again. Call
   * it for every server event, as soon as it is recorded; events for exports not watched here are ignored.
   */
  noteServerEvent(ev: ChangeEvent): void {
    const group = this.#byExport.get(exportKey(ev.guest, ev.export));
    if (group === undefined || this.#closing !== undefined) return;
    this.#echoes.note(group.root, ev);
    // The event is also the newest knowledge of the name: a later host chmod of it is then 'metadata'.
    if (ev.kind === 'renamed' && ev.oldPath !== undefined) this.#seen.delete(seenKey(group, ev.oldPath));
    const state = expectedState(ev);
    if (state === null) this.#seen.delete(seenKey(group, ev.path));
    else this.#track(seenKey(group, ev.path), state);
  }

  /** Stop all watchers. Idempotent; resolves when chokidar has released every watch. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    await Promise.all(this.#groups.map((g) => g.watcher?.close()));
  }

  // One group per real directory: exports naming the same root (or a symlink to it) share one watch.
  #groupFor(ex: WatchedExport): RootGroup | undefined {
    let root: string;
    try {
      root = realpathSync(path.resolve(ex.root));
    } catch (err) {
      // Reported after the constructor returns, so that listeners attached right after it hear it.
      queueMicrotask(() => this.#watchFailed(path.resolve(ex.root), new Set(), err));
      return undefined;
    }
    let group = this.#groups.find((g) => g.root === root);
    if (group === undefined) {
      group = { id: this.#groups.length, root, exports: [], watcher: undefined, logged: new Set() };
      this.#groups.push(group);
    }
    if (!group.exports.some((e) => e.guest === ex.guest && e.export === ex.export)) {
      group.exports.push({ guest: ex.guest, export: ex.export });
    }
    return group;
  }

  #start(group: RootGroup): Promise<void> {
    const ignore = this.#ignore;
    const watcher = watch(group.root, {
      ignoreInitial: true,
      followSymlinks: false,
      // atomic would hold deletions for 100 ms and silently drop names that look like editor temp files
      // ('x~', '.x.swp'): a backup must see those too. Bursts are merged below instead.
      atomic: false,
      ignored: ignore === undefined ? undefined : (abs: string) => {
        const rel = relativeTo(group.root, abs);
        return rel !== null && rel !== '' && ignore(rel, group.root);
      },
    });
    group.watcher = watcher;
    watcher.on('all', (event, abs) => {
      if (OBSERVATIONS.has(event)) this.#observe(group, event as Observation, abs);
    });
    watcher.on('error', (err) => this.#watchFailed(group.root, group.logged, err));
    return new Promise<void>((resolve) => {
      watcher.once('ready', resolve);
      // chokidar never says 'ready' once closed; close() must not leave `ready` hanging.
      this.#readyWaiters.push(resolve);
    });
  }

  #observe(group: RootGroup, event: Observation, abs: string): void {
    if (this.#closing !== undefined) return;
    const rel = relativeTo(group.root, abs);
    if (rel === null) return;
    const key = seenKey(group, rel);
    const now = performance.now();
    const pending = this.#pending.get(key);
    if (pending === undefined) {
      const deadline = now + Math.max(this.#maxHoldMs, this.#settleMs);
      this.#pending.set(key, {
        group, rel, first: event, removedDir: event === 'unlinkDir', due: now + this.#settleMs, deadline, extended: 0,
      });
    } else {
      pending.due = Math.min(now + this.#settleMs, pending.deadline);
      pending.removedDir ||= event === 'unlinkDir';
    }
    this.#schedule(this.#settleMs);
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#closing !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, delayMs);
  }

  // Report every name that has settled. One flush at a time, so names come out in the order they were first
  // observed; what is still busy waits for the next one.
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      const now = performance.now();
      const settled: Pending[] = [];
      for (const [key, p] of this.#pending) {
        if (p.due > now) continue;
        const forced = p.due >= p.deadline;
        if (forced && p.extended < MAX_EXTENSIONS && this.#echoes.busy(path.join(p.group.root, p.rel))) {
          p.extended++;
          p.deadline = now + this.#maxHoldMs;
          p.due = now + this.#settleMs;
          continue;
        }
        settled.push(p);
        this.#pending.delete(key);
      }
      const states: Array<StatState | null | undefined> = [];
      // Bounded concurrency: a copy of 100k files settles at once and must not queue 100k lstats together.
      for (let i = 0; i < settled.length; i += LSTAT_BATCH) {
        states.push(...await Promise.all(settled.slice(i, i + LSTAT_BATCH).map((p) => this.#lstat(p))));
      }
      if (this.#closing !== undefined) return;
      const out: Array<{ p: Pending; changes: HostChange[] }> = [];
      settled.forEach((p, i) => {
        const current = states[i];
        if (current !== undefined) out.push({ p, changes: this.#decide(p, current) });
      });
      const covered = await this.#coveredRemovals(out);
      if (this.#closing !== undefined) return;
      const time = Date.now();
      out.forEach(({ p, changes }, i) => {
        if (covered[i] === true) return;
        for (const change of changes) for (const ex of p.group.exports) this.#emitOne(ex, p.rel, change, time);
      });
    } finally {
      this.#flushing = false;
    }
    if (this.#pending.size > 0 && this.#closing === undefined) {
      let next = Infinity;
      for (const p of this.#pending.values()) next = Math.min(next, p.due);
      this.#schedule(Math.max(1, Math.ceil(next - performance.now())));
    }
  }

  // undefined: the name could not be read (logged); it is left to reconciliation.
  async #lstat(p: Pending): Promise<StatState | null | undefined> {
    try {
      return await lstatState(path.join(p.group.root, p.rel));
    } catch (err) {
      this.#log.log('warn', 'host watcher: cannot stat a changed name', { root: p.group.root, path: p.rel, err: String(err) });
      return undefined;
    }
  }

  #decide(p: Pending, current: StatState | null): HostChange[] {
    const key = seenKey(p.group, p.rel);
    const changes = hostChanges(p, this.#seen.get(key), current);
    if (current === null) this.#seen.delete(key);
    else this.#track(key, current);
    if (changes.length > 0 && this.#echoes.isEcho(path.join(p.group.root, p.rel), current)) return [];
    return changes;
  }

  // A directory removed with everything in it is one 'dirDeleted', as reconciliation reports it: a removal
  // whose parent directory is gone too (or is no longer a directory) is covered by the parent's own event,
  // which chokidar reports whether it settles in this flush, came out before, or comes later.
  async #coveredRemovals(out: ReadonlyArray<{ p: Pending; changes: HostChange[] }>): Promise<boolean[]> {
    const parents = new Map<string, Promise<boolean>>();
    return Promise.all(out.map(({ p, changes }) => {
      const slash = p.rel.lastIndexOf('/');
      if (slash < 0 || changes.length === 0 || !changes.every((c) => c.kind === 'deleted' || c.kind === 'dirDeleted')) return false;
      const parent = path.join(p.group.root, p.rel.slice(0, slash));
      let gone = parents.get(parent);
      if (gone === undefined) {
        gone = lstatState(parent).then((st) => st === null || !st.dir, () => false);
        parents.set(parent, gone);
      }
      return gone;
    }));
  }

  #emitOne(ex: { guest: string; export: string }, rel: string, change: HostChange, time: number): void {
    if (this.#closing !== undefined) return; // a listener may close the watcher halfway through a flush
    const { dir, size, mtime, ino } = change.state;
    const ev: NewEvent = { guest: ex.guest, export: ex.export, kind: change.kind, path: rel, dir, size, mtime, ino, time, origin: 'host' };
    try {
      this.emit('event', ev);
    } catch (err) {
      // A listener's failure is its own; the other exports and names still get their events.
      this.#log.log('error', 'host watcher: event listener threw', { guest: ex.guest, export: ex.export, path: rel, err: String(err) });
    }
  }

  #track(key: string, state: FileState | StatState): void {
    this.#seen.delete(key);
    this.#seen.set(key, state);
    if (this.#seen.size > this.#maxTracked) {
      const oldest = this.#seen.keys().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
  }

  // `logged`: the error codes already logged at 'error' for `root`; repeats (one per directory when inotify
  // runs out of watches) go to 'debug', while every one is still emitted.
  #watchFailed(root: string, logged: Set<string>, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    const rel = typeof e.path === 'string' ? relativeTo(root, e.path) ?? e.path : '';
    const error = watchError(err, rel);
    const code = e.code ?? 'unknown';
    const level = logged.has(code) ? 'debug' : 'error';
    logged.add(code);
    this.#log.log(level, 'host watcher: cannot watch a directory; changes below it are seen only by reconciliation', {
      root, path: rel, code: error.code, err: error.message,
    });
    this.emit('watchError', { root, path: rel, error });
  }
}

function watchError(err: unknown, rel: string): XenfsError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC') {
    return new LimitError('fs.inotify.max_user_watches', `no inotify watch left for '${rel}' (raise the sysctl)`, { cause: err });
  }
  const num = e.code === undefined ? undefined : errnoNumber(e.code);
  if (num !== undefined) return new ErrnoError(num, 'watch', rel, { cause: err });
  return new XenfsError('XENFS_ERR_INTERNAL', `watching '${rel}' failed: ${String(err)}`, { cause: err });
}

function exportKey(guest: string, exp: string): string {
  return `${guest}\0${exp}`;
}

function seenKey(group: RootGroup, rel: string): string {
  return `${group.id}\0${rel}`;
}

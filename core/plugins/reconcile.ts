// Reconciliation: the difference between an export directory as it is now and what a service has recorded of
// it, as change events. Run after any crash, and for a guest whose files predate the service (an empty record:
// everything is 'created', which is initial indexing). The walk (sorted-walk.ts) and the record
// (RecordedState.entries) both come in UTF-8 byte order of the path, so one merge pass over the two finds
// every difference while holding one directory listing and one page of rows, not the tree twice.
//
// Rules, where a choice was made:
// - a file whose inode differs from the record was replaced under the same name (an editor's save by rename,
//   a restore): it is 'modified', carrying the new inode, as the host watcher reports it; a consumer that
//   keys by path re-reads it either way, and one event per name keeps counts honest;
// - a directory still present is never reported: its size and mtime change with every name added to it, and
//   its contents are compared name by name;
// - a recorded directory that is gone is one 'dirDeleted', not one event per name that was under it;
// - a name that changed between file and directory is the deletion of one and the creation of the other;
// - what cannot be read (an lstat or readdir failing with EACCES, say) is neither created nor deleted: its
//   rows are left as they are, and the pass reports how many such places it met;
// - origin is 'host': the difference is mostly what was done on dom0 while nothing watched. It may also be a
//   guest change whose event the service had not handled when it stopped (still queued, so it comes twice).
import { ErrnoError, errno } from '../errors.ts';
import type { EventKind, NewEvent } from '../events/change-event.ts';
import type { FileState } from '../events/file-state.ts';
import { lstatState, sameData } from '../events/file-state.ts';
import { type Logger, silentLogger } from '../util/log.ts';
import { compareBytes, isUnder } from './path-order.ts';
import type { RecordedEntry, RecordedState } from './recorded-state.ts';
import { type WalkItem, walkKey, walkSorted } from './sorted-walk.ts';

export interface ReconcileProgress {
  /** Names walked so far. */
  scanned: number;
  /** Names in the export, when known; a single pass cannot know it before it ends, so it is left out until then. */
  total?: number;
  /** Events yielded so far. */
  emitted: number;
}

export interface ReconcileOptions {
  guest: string;
  export: string;
  /** The export directory on dom0. */
  root: string;
  state: RecordedState;
  /** Called at most every 100 ms while the pass runs, and once when it ends (with `total`). */
  onProgress?: (progress: ReconcileProgress) => void;
  /** Aborting makes the pass throw the signal's reason at the next name. */
  signal?: AbortSignal;
  /** Names to leave out on both sides (the server's state files), with everything below them. */
  ignore?: (path: string) => boolean;
  logger?: Logger;
}

export interface ReconcileResult {
  scanned: number;
  emitted: number;
  /** Places that could not be read, whose recorded rows were left alone. */
  unreadable: number;
}

const PROGRESS_INTERVAL_MS = 100;

/**
 * Yields the events that bring `state`'s record of the export in line with `root`, in path order: a directory
 * before anything in it, so 'dirCreated' comes before the 'created' of its files. Does not write the record:
 * the caller applies each event once it has handled it (apply() between yields is safe). Throws ErrnoError when
 * the root itself cannot be read, rather than reporting the whole export deleted.
 */
export async function* reconcile(options: ReconcileOptions): AsyncGenerator<NewEvent, ReconcileResult, undefined> {
  const { guest, root, state, signal } = options;
  const exp = options.export;
  const log = options.logger ?? silentLogger;
  const rootState = await lstatState(root);
  if (rootState === null) throw new ErrnoError(errno('ENOENT'), 'reconcile', root, { syscall: 'lstat' });
  if (!rootState.dir) throw new ErrnoError(errno('ENOTDIR'), 'reconcile', root, { syscall: 'lstat' });

  const ignored = ancestorAwareIgnore(options.ignore);
  const records = state.entries(guest, exp);
  // Rows under this directory prefix are passed over: a directory reported deleted, or one that cannot be read.
  let skipUnder: string | undefined;
  const nextRecord = (): RecordedEntry | undefined => {
    for (;;) {
      const r = records.next();
      if (r.done === true) return undefined;
      if (skipUnder !== undefined && isUnder(r.value.path, skipUnder)) continue;
      if (r.value.path === '' || ignored(r.value.path)) continue;
      return r.value;
    }
  };
  const walk = walkSorted(root, { ignore: options.ignore, signal });
  let rec = nextRecord();
  const skip = (dir: string): void => {
    skipUnder = dir;
    while (rec !== undefined && isUnder(rec.path, dir)) rec = nextRecord();
  };

  const result: ReconcileResult = { scanned: 0, emitted: 0, unreadable: 0 };
  let lastProgress = performance.now();
  const event = (kind: EventKind, path: string, s: FileState): NewEvent => {
    result.emitted++;
    return { guest, export: exp, kind, path, dir: s.dir, size: s.size, mtime: s.mtime, ino: s.ino, time: Date.now(), origin: 'host' };
  };

  let step = await walk.next();
  for (;;) {
    signal?.throwIfAborted();
    const item: WalkItem | undefined = step.done === true ? undefined : step.value;
    if (item === undefined && rec === undefined) break;
    const order = item === undefined ? 1 : rec === undefined ? -1 : compareBytes(walkKey(item), rec.path);
    if (order > 0 && rec !== undefined) {
      // Recorded, no longer on disk.
      const gone = rec;
      yield event(gone.dir ? 'dirDeleted' : 'deleted', gone.path, gone);
      rec = nextRecord();
      if (gone.dir) skip(gone.path);
    } else if (item !== undefined) {
      const same = order === 0 ? rec : undefined;
      if (same !== undefined) rec = nextRecord();
      if (item.kind === 'entry') {
        result.scanned++;
        yield* differences(item.path, item.state, same, event, skip);
      } else {
        result.unreadable++;
        log.log('warn', 'reconcile: cannot read; its recorded state is kept', { guest, export: exp, path: item.path, err: item.error.message });
        if (item.kind === 'unreadableTree') skip(item.path);
      }
      step = await walk.next();
    }
    const now = performance.now();
    if (options.onProgress !== undefined && now - lastProgress >= PROGRESS_INTERVAL_MS) {
      lastProgress = now;
      options.onProgress({ scanned: result.scanned, emitted: result.emitted });
    }
  }
  options.onProgress?.({ scanned: result.scanned, total: result.scanned, emitted: result.emitted });
  return result;
}

// The events for one name on disk, given its row if recorded.
function* differences(
  path: string, now: FileState, was: RecordedEntry | undefined,
  event: (kind: EventKind, path: string, s: FileState) => NewEvent, skip: (dir: string) => void,
): Generator<NewEvent> {
  if (was !== undefined && was.dir !== now.dir) {
    yield event(was.dir ? 'dirDeleted' : 'deleted', path, was);
    if (was.dir) skip(path);
    was = undefined;
  }
  if (was === undefined) yield event(now.dir ? 'dirCreated' : 'created', path, now);
  else if (!now.dir && !sameData(was, now)) yield event('modified', path, now);
}

// Rows come in path order, so a directory's rows are consecutive: remember the last parent judged.
function ancestorAwareIgnore(ignore: ((path: string) => boolean) | undefined): (path: string) => boolean {
  if (ignore === undefined) return () => false;
  let lastParent: string | undefined;
  let lastParentIgnored = false;
  const parentIgnored = (parent: string): boolean => {
    if (parent === lastParent) return lastParentIgnored;
    let ignoredHere = false;
    for (let i = parent.indexOf('/'); !ignoredHere; i = parent.indexOf('/', i + 1)) {
      ignoredHere = ignore(i < 0 ? parent : parent.slice(0, i));
      if (i < 0) break;
    }
    lastParent = parent;
    lastParentIgnored = ignoredHere;
    return ignoredHere;
  };
  return (p) => {
    const slash = p.lastIndexOf('/');
    return (slash > 0 && parentIgnored(p.slice(0, slash))) || ignore(p);
  };
}

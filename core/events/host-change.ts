// What a settled burst of watcher observations on one name amounts to, as change events. Pure: the watcher
// supplies the burst, what it last knew of the name and a fresh lstat; this decides. Deciding from the state
// on disk rather than from the order of observations is what makes a burst of appends one 'modified' and a
// file made and removed within the burst nothing at all.
import type { EventKind } from './change-event.ts';
import { type FileState, type StatState, sameData, sameMetadata } from './file-state.ts';

/** The observations chokidar makes on a name. */
export type Observation = 'add' | 'addDir' | 'change' | 'unlink' | 'unlinkDir';

/** The observations on one name since its last settled state. */
export interface Burst {
  /** The first observation: it tells whether the name existed before the burst, and as what. */
  first: Observation;
  /** Whether a directory by this name was removed during the burst (even if one exists again now). */
  removedDir: boolean;
}

/** One change to announce, with the state its event carries (the state before, for deletions). */
export interface HostChange {
  kind: EventKind;
  state: FileState;
}

/**
 * The changes that turn the name's state before the burst into `current` (lstat after it settled; `null`:
 * absent). `known` is what the watcher last saw of the name: a StatState from its own lstat, a bare FileState
 * from a server event (mode and owner unknown), or undefined (never seen: with ignoreInitial, every file that
 * existed when watching began). Rules:
 * - absent before, absent now: nothing (a temporary file);
 * - a file present before and now: 'modified' when inode, size or mtime differ (an inode that differs is a
 *   file replaced under the same name, e.g. an editor's save by rename: still 'modified', with the new inode),
 *   'metadata' when only mode, owner or ctime differ (or they cannot be compared), nothing when nothing
 *   differs; a file never seen before is 'modified', since a chmod cannot be told from a write without a
 *   previous stat, and an extra 'modified' costs a re-read where a missed one loses a change;
 * - a directory present before and now: nothing, unless it was removed and made again during the burst;
 * - a name that changed between directory and non-directory: the deletion, then the creation.
 */
export function hostChanges(burst: Burst, known: FileState | undefined, current: StatState | null): HostChange[] {
  const existed = burst.first !== 'add' && burst.first !== 'addDir';
  if (!existed) return current === null ? [] : [creation(current)];
  // chokidar reports 'change' for files only, so only 'unlinkDir' first says the name was a directory.
  const wasDir = burst.first === 'unlinkDir';
  const before = known !== undefined && known.dir === wasDir ? known : undefined;
  const removal = deletion(before ?? { dir: wasDir, size: 0, mtime: 0, ino: 0 });
  if (current === null) return [removal];
  if (current.dir !== wasDir) return [removal, creation(current)];
  if (current.dir) return burst.removedDir ? [removal, creation(current)] : [];
  if (before === undefined || !sameData(before, current)) return [{ kind: 'modified', state: current }];
  if (!isStatState(before) || !sameMetadata(before, current)) return [{ kind: 'metadata', state: current }];
  return [];
}

function creation(state: FileState): HostChange {
  return { kind: state.dir ? 'dirCreated' : 'created', state };
}

function deletion(state: FileState): HostChange {
  return { kind: state.dir ? 'dirDeleted' : 'deleted', state };
}

function isStatState(s: FileState): s is StatState {
  return 'ctime' in s;
}

// The server's own changes, remembered for a short window so the host watcher does not report them a second
// time. A guest writing through XenFS changes the export directory on dom0, and inotify sees that exactly as it
// sees an administrator's edit; the only thing that tells them apart is that the server has already announced
// the state the file is now in.
//
// The rule: a change the watcher observed is an echo when the name's state on disk, read when the change has
// settled, is the state the server's latest event for that name (noted less than `windowMs` ago) says it is
// in — the same inode, size and mtime (a directory: the same inode), or absence for a deletion. A later change
// on the host alters at least one of those and so comes out. What this cannot tell apart:
// - a host chmod/chown of a file within the window of a guest's change to it (mode and owner are not in the
//   event); reconciliation does not see those either;
// - a server event that arrives after the watcher already reported the change (a guest that pauses longer
//   than the watcher's settle time between writes and closes later): that change comes out twice, once as
//   'host' and once as 'guest'. A duplicate, never a loss; consumers treat events as idempotent.
import path from 'node:path';
import type { ChangeEvent } from './change-event.ts';
import { type FileState, type StatState, sameData } from './file-state.ts';

export interface EchoFilterOptions {
  /** How long a server event suppresses matching observations, in ms. */
  windowMs: number;
  /** Upper bound on remembered names; the oldest are forgotten first (their echoes then come out). */
  maxNotes: number;
}

interface Note {
  /** The state the server left the name in; `null`: the name is gone. */
  expect: FileState | null;
  until: number;
  /** When it was noted, in noting order: the newest note that covers a name decides. */
  order: number;
}

// A directory the server renamed: its contents moved without events of their own, and inotify reports them
// as deleted under the old name and created under the new one.
interface TreeNote {
  from: string;
  to: string;
  /** The event's wall-clock time: what was moved has a ctime no later than this. */
  time: number;
  until: number;
  order: number;
}

/**
 * Remembers server events by absolute dom0 path and answers whether an observed state is their echo. Paths
 * are absolute so that an export nested in another export's root is matched through either root.
 */
export class EchoFilter {
  readonly #windowMs: number;
  readonly #maxNotes: number;
  readonly #notes = new Map<string, Note>();
  #trees: TreeNote[] = [];
  #lastSweep = performance.now();
  #order = 0;

  constructor(options: EchoFilterOptions) {
    this.#windowMs = options.windowMs;
    this.#maxNotes = options.maxNotes;
  }

  /** Remember what `ev` (a server event for the export whose root is `root`) left on disk. */
  note(root: string, ev: ChangeEvent): void {
    const now = performance.now();
    this.#sweep(now);
    const until = now + this.#windowMs;
    const order = ++this.#order;
    const abs = path.join(root, ev.path);
    if (ev.kind === 'renamed' && ev.oldPath !== undefined) {
      const from = path.join(root, ev.oldPath);
      this.#set(from, { expect: null, until, order });
      if (ev.dir) this.#trees.push({ from: from + path.sep, to: abs + path.sep, time: ev.time, until, order });
    }
    this.#set(abs, { expect: expectedState(ev), until, order });
  }

  /** Whether `current` (lstat of `abs` now; `null`: absent) is what a recent server event announced. */
  /** Whether the server changed `abs` within the window: a guest is working on it right now. */
  busy(abs: string): boolean {
    const note = this.#notes.get(abs);
    return note !== undefined && note.until > performance.now();
  }

  isEcho(abs: string, current: StatState | null): boolean {
    const now = performance.now();
    let note = this.#notes.get(abs);
    if (note !== undefined && note.until <= now) note = undefined;
    // A rename of a directory above the name, if newer than the name's own note, decides instead; of several
    // renames the newest wins (a/ -> b/ then b/ -> c/ leaves b/ empty).
    for (let i = this.#trees.length - 1; i >= 0; i--) {
      const tree = this.#trees[i]!;
      if (note !== undefined && tree.order < note.order) break;
      if (tree.until <= now) continue;
      if (abs.startsWith(tree.from)) return current === null;
      // Moved entries keep their ctime; anything made inside the new name after the rename is newer.
      if (abs.startsWith(tree.to)) return current !== null && current.ctime <= tree.time;
    }
    if (note === undefined) return false;
    if (note.expect === null) return current === null;
    return current !== null && sameData(note.expect, current);
  }

  /** How many names are remembered (expired ones count until the next sweep). */
  get size(): number {
    return this.#notes.size;
  }

  #set(abs: string, note: Note): void {
    // Re-inserting keeps the map in expiry order, so the oldest note is always the first.
    this.#notes.delete(abs);
    this.#notes.set(abs, note);
    if (this.#notes.size > this.#maxNotes) {
      const oldest = this.#notes.keys().next();
      if (oldest.done !== true) this.#notes.delete(oldest.value);
    }
  }

  // At most once per window, and only when notes arrive: an idle filter costs nothing.
  #sweep(now: number): void {
    if (now - this.#lastSweep < this.#windowMs) return;
    this.#lastSweep = now;
    for (const [abs, note] of this.#notes) {
      if (note.until > now) break;
      this.#notes.delete(abs);
    }
    this.#trees = this.#trees.filter((t) => t.until > now);
  }
}

/** The state a server event says its `path` is in afterwards; `null` for the kinds that remove it. */
export function expectedState(ev: ChangeEvent): FileState | null {
  if (ev.kind === 'deleted' || ev.kind === 'dirDeleted') return null;
  return { dir: ev.dir || ev.kind === 'dirCreated', size: ev.size, mtime: ev.mtime, ino: ev.ino };
}

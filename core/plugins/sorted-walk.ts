// A walk of an export directory that yields every name below the root in UTF-8 byte order of its path (see
// path-order.ts), so that reconciliation can merge it against the recorded state read back in that same
// order, one entry at a time on each side.
//
// The order is not a plain depth-first walk: 'a-b' and 'a.b' sort between the directory 'a' and its contents
// 'a/…'. Within a directory, each subdirectory 'x' therefore gets two places in the sort: 'x' for the entry
// itself and 'x/' for its contents, expanded (read) only when the walk reaches that place. Every path under
// 'x/' sorts after 'x/' and before the next key of the same directory, so expanding there keeps the order.
// Memory: one sorted listing per directory level on the current path, never the whole tree.
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { type StatState, stateOf } from '../events/file-state.ts';
import { compareBytes } from './path-order.ts';

/** One item of the walk, in path order. */
export type WalkItem =
  /** A name and its lstat. */
  | { kind: 'entry'; path: string; state: StatState }
  /** A name that exists but could not be lstat'd: nothing is known of it. Sorts at `path`. */
  | { kind: 'unreadableEntry'; path: string; error: NodeJS.ErrnoException }
  /** A directory whose contents could not be listed: nothing is known below it. Sorts at `path + '/'`. */
  | { kind: 'unreadableTree'; path: string; error: NodeJS.ErrnoException };

export interface WalkOptions {
  /** Names to leave out, with everything below them; `path` relative to the root, '/'-separated. */
  ignore?: (path: string) => boolean;
  signal?: AbortSignal;
}

/** The place an item takes in the path order: its path, or for a subtree, the path plus '/'. */
export function walkKey(item: WalkItem): string {
  return item.kind === 'unreadableTree' ? `${item.path}/` : item.path;
}

interface Slot {
  /** The name, plus '/' for the slot that stands for a directory's contents. */
  key: string;
  name: string;
  contents: boolean;
  /** The lstat, started a little ahead of the walk (never rejects). */
  stat?: Promise<Stats | NodeJS.ErrnoException>;
}

interface Frame {
  /** Relative path of the directory; '' for the root. */
  dir: string;
  slots: Slot[];
  next: number;
}

// lstats in flight ahead of the walk within one directory: enough to keep the thread pool busy.
const LOOKAHEAD = 32;

/**
 * Walks `root` (which must be a directory; not followed if a symlink below it), yielding every name under it
 * in byte order of its relative path. Symlinks are reported as themselves, never followed. Names that vanish
 * during the walk are left out; names that cannot be read are reported as unreadable rather than missing.
 * A tree that changes while it is walked gives a snapshot of no single instant; the watcher, or the next
 * pass, reports what changed meanwhile.
 */
export async function* walkSorted(root: string, options: WalkOptions = {}): AsyncGenerator<WalkItem, void, undefined> {
  const stack: Frame[] = [];
  const opened = await openFrame(root, '', options);
  if (!Array.isArray(opened)) throw opened;
  stack.push({ dir: '', slots: opened, next: 0 });
  while (stack.length > 0) {
    options.signal?.throwIfAborted();
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.slots.length) {
      stack.pop();
      continue;
    }
    const index = frame.next++;
    const slot = frame.slots[index]!;
    const rel = frame.dir === '' ? slot.name : `${frame.dir}/${slot.name}`;
    if (slot.contents) {
      const slots = await openFrame(root, rel, options);
      if (Array.isArray(slots)) stack.push({ dir: rel, slots, next: 0 });
      else if (slots !== null) yield { kind: 'unreadableTree', path: rel, error: slots };
      continue;
    }
    startLstats(root, frame, index);
    const st = await (slot.stat ?? lstatOrError(path.join(root, rel)));
    slot.stat = undefined;
    if (!(st instanceof Error)) yield { kind: 'entry', path: rel, state: stateOf(st) };
    else if (!isGone(st)) yield { kind: 'unreadableEntry', path: rel, error: st };
  }
}

// The sorted slots of one directory; null when it is gone (its contents with it); the error when it cannot be
// read. The root's own failure is thrown by the caller: a missing root must not read as an empty export.
async function openFrame(root: string, rel: string, options: WalkOptions): Promise<Slot[] | NodeJS.ErrnoException | null> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return rel !== '' && isGone(e) ? null : e;
  }
  const slots: Slot[] = [];
  for (const d of dirents) {
    const child = rel === '' ? d.name : `${rel}/${d.name}`;
    if (options.ignore?.(child) === true) continue;
    slots.push({ key: d.name, name: d.name, contents: false });
    // The dirent's type is lstat's (d_type, or an lstat by Node where the filesystem gives none): a symlink
    // to a directory is not a directory here and is never entered.
    if (d.isDirectory()) slots.push({ key: `${d.name}/`, name: d.name, contents: true });
  }
  slots.sort((a, b) => compareBytes(a.key, b.key));
  return slots;
}

function startLstats(root: string, frame: Frame, from: number): void {
  let started = 0;
  for (let i = from; i < frame.slots.length && started < LOOKAHEAD; i++) {
    const slot = frame.slots[i]!;
    if (slot.contents) continue;
    started++;
    if (slot.stat !== undefined) continue;
    const rel = frame.dir === '' ? slot.name : `${frame.dir}/${slot.name}`;
    slot.stat = lstatOrError(path.join(root, rel));
  }
}

// Never rejects: an lstat started ahead of the walk must not become an unhandled rejection while it waits.
function lstatOrError(abs: string): Promise<Stats | NodeJS.ErrnoException> {
  return lstat(abs).catch((err: unknown) => err as NodeJS.ErrnoException);
}

function isGone(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ENOENT' || err.code === 'ENOTDIR';
}

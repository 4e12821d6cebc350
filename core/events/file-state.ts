// What the host watcher and reconciliation know about one name in an export: the fields a ChangeEvent carries
// (kind of entry, size, mtime, inode) and, when it came from our own lstat, the metadata that tells a chmod
// from a write. One comparison rule for both, so a file the watcher calls unchanged is one reconciliation
// calls unchanged too.
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';

/** One entry's state as a ChangeEvent describes it. `mtime` in milliseconds since the epoch. */
export interface FileState {
  dir: boolean;
  size: number;
  mtime: number;
  ino: number;
}

/** A FileState read by lstat on dom0, with the fields that change on chmod, chown and utimes. */
export interface StatState extends FileState {
  mode: number;
  uid: number;
  gid: number;
  /** Milliseconds since the epoch. */
  ctime: number;
}

// Two readers of one file's mtime may round its nanoseconds to a double differently (Node's Stats, a native
// statx, a value that went through SQLite's REAL); anything closer than a microsecond is the same instant.
const MTIME_EPSILON_MS = 0.001;

/** Whether two mtimes (ms) name the same instant, allowing for rounding of the nanoseconds. */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < MTIME_EPSILON_MS;
}

/** The state lstat reported; directories are `dir`, everything else (symlinks included) is not. */
export function stateOf(st: Stats): StatState {
  return {
    dir: st.isDirectory(),
    size: st.size,
    mtime: st.mtimeMs,
    ino: st.ino,
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    ctime: st.ctimeMs,
  };
}

/**
 * Whether `b` is the same entry with the same data as `a`: same kind, same inode and, for non-directories,
 * same size and mtime. A directory's size and mtime change whenever a name inside it does, so for
 * directories only the inode counts.
 */
export function sameData(a: FileState, b: FileState): boolean {
  if (a.dir !== b.dir || a.ino !== b.ino) return false;
  return a.dir || (a.size === b.size && sameMtime(a.mtime, b.mtime));
}

/** Whether mode, owner and ctime are unchanged; both must come from lstat. */
export function sameMetadata(a: StatState, b: StatState): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && sameMtime(a.ctime, b.ctime);
}

/** lstat that answers `null` for a name that is gone (ENOENT, or ENOTDIR for a parent replaced by a file). */
export async function lstatState(abs: string): Promise<StatState | null> {
  try {
    return stateOf(await lstat(abs));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * `abs` as a ChangeEvent path relative to `root`: '/'-separated, no leading '/', '' for the root itself; or
 * `null` when `abs` is not inside `root` (such a path must never reach an event).
 */
export function relativeTo(root: string, abs: string): string | null {
  const rel = path.relative(root, abs);
  if (rel === '') return '';
  if (path.isAbsolute(rel) || rel === '..' || rel.startsWith(`..${path.sep}`)) return null;
  return path.sep === '/' ? rel : rel.split(path.sep).join('/');
}

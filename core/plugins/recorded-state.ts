// What a service has seen of each guest export: one row per name, kept in step with the change events the
// service has handled, so that after a crash (or for files that predate the service) reconciliation can
// compare the export directory with it and report only the difference.
//
// The table lives in a database the service already owns (its index, its catalogue): the handle is passed
// in and never closed here. Rows are keyed (guest, export, path) with path in BINARY collation, so reading
// them back "ORDER BY path" gives UTF-8 byte order, the order path-order.ts defines and the walk follows.
import type Database from 'better-sqlite3';
import { ConfigError, XenfsError } from '../errors.ts';
import type { ChangeEvent } from '../events/change-event.ts';
import { isUnder, subtreeRange } from './path-order.ts';

/** One recorded name. `mtime` in ms since the epoch; `seq` of the event that last wrote the row. */
export interface RecordedEntry {
  path: string;
  dir: boolean;
  size: number;
  mtime: number;
  ino: number;
  seq: number;
}

interface Row {
  path: string;
  dir: number;
  size: number;
  mtime: number;
  ino: number;
  seq: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS xenfs_recorded (
    guest TEXT NOT NULL,
    export TEXT NOT NULL,
    path TEXT NOT NULL COLLATE BINARY,
    dir INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    ino INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (guest, export, path)
  ) WITHOUT ROWID`;

const COLUMNS = 'path, dir, size, mtime, ino, seq';
const DEFAULT_PAGE = 1000;

/**
 * The recorded state of every export a service handles, over a better-sqlite3 handle the caller owns.
 *
 * Ordering rule: a row is changed only by an event at least as new (by `seq`) as the one that last wrote it,
 * so an event handled late (a retry after a newer one) cannot undo the newer one. This holds for every row a
 * subtree operation touches too: a name made inside a directory after the directory was removed or renamed
 * is left where it is.
 */
export class RecordedState {
  readonly #upsert: Database.Statement;
  readonly #deleteOne: Database.Statement;
  readonly #deleteRange: Database.Statement;
  readonly #deleteExport: Database.Statement;
  readonly #moveRange: Database.Statement;
  readonly #get: Database.Statement<unknown[], Row>;
  readonly #firstPage: Database.Statement<unknown[], Row>;
  readonly #nextPage: Database.Statement<unknown[], Row>;
  readonly #count: Database.Statement<unknown[], { n: number }>;
  readonly #forget: Database.Statement;
  readonly #applyOne: (ev: ChangeEvent) => void;
  readonly #applyMany: (evs: Iterable<ChangeEvent>) => void;

  /** Creates the table if it is missing. The database must use UTF-8 (SQLite's default) for the path order. */
  constructor(db: Database.Database) {
    const encoding: unknown = db.pragma('encoding', { simple: true });
    if (encoding !== 'UTF-8') {
      throw new ConfigError(db.name, 'encoding', `recorded state needs a UTF-8 database for its path order, not ${String(encoding)}`);
    }
    db.exec(SCHEMA);
    const where = 'guest = ? AND export = ?';
    this.#upsert = db.prepare(`INSERT INTO xenfs_recorded (guest, export, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (guest, export, path) DO UPDATE SET dir = excluded.dir, size = excluded.size,
        mtime = excluded.mtime, ino = excluded.ino, seq = excluded.seq
      WHERE excluded.seq >= xenfs_recorded.seq`);
    this.#deleteOne = db.prepare(`DELETE FROM xenfs_recorded WHERE ${where} AND path = ? AND seq <= ?`);
    this.#deleteRange = db.prepare(`DELETE FROM xenfs_recorded WHERE ${where} AND path >= ? AND path < ? AND seq <= ?`);
    this.#deleteExport = db.prepare(`DELETE FROM xenfs_recorded WHERE ${where} AND seq <= ?`);
    // substr/length count characters on the SQL side, so the prefix length is measured there too.
    this.#moveRange = db.prepare(`UPDATE OR IGNORE xenfs_recorded SET path = ? || substr(path, length(?) + 1)
      WHERE ${where} AND path >= ? AND path < ? AND seq <= ?`);
    this.#get = db.prepare<unknown[], Row>(`SELECT ${COLUMNS} FROM xenfs_recorded WHERE ${where} AND path = ?`);
    this.#firstPage = db.prepare<unknown[], Row>(`SELECT ${COLUMNS} FROM xenfs_recorded WHERE ${where} ORDER BY path LIMIT ?`);
    this.#nextPage = db.prepare<unknown[], Row>(
      `SELECT ${COLUMNS} FROM xenfs_recorded WHERE ${where} AND path > ? ORDER BY path LIMIT ?`);
    this.#count = db.prepare<unknown[], { n: number }>(`SELECT count(*) AS n FROM xenfs_recorded WHERE ${where}`);
    this.#forget = db.prepare(`DELETE FROM xenfs_recorded WHERE ${where}`);
    this.#applyOne = db.transaction((ev: ChangeEvent) => this.#apply(ev));
    this.#applyMany = db.transaction((evs: Iterable<ChangeEvent>) => {
      for (const ev of evs) this.#apply(ev);
    });
  }

  /**
   * Record what a successfully handled event implies, atomically: created, modified, metadata and dirCreated
   * write the row; deleted removes it; dirDeleted removes the directory and everything under it; renamed
   * moves the row and, for a directory, everything under it. Throws XenfsError('XENFS_ERR_INTERNAL') for a
   * rename that no filesystem can perform (into itself, or without `oldPath`).
   */
  apply(ev: ChangeEvent): void {
    this.#applyOne(ev);
  }

  /** apply() for each event in order, in one transaction: all are recorded or, on a throw, none. */
  applyMany(evs: Iterable<ChangeEvent>): void {
    this.#applyMany(evs);
  }

  /**
   * The recorded names of one export in path order (UTF-8 bytes), the export root itself not included.
   * Read a page at a time, so the caller may apply() between items without the connection being busy; rows
   * written meanwhile beyond the current page are seen, those before it are not.
   */
  *entries(guest: string, exp: string, pageSize = DEFAULT_PAGE): IterableIterator<RecordedEntry> {
    let page = this.#firstPage.all(guest, exp, pageSize);
    while (page.length > 0) {
      for (const row of page) yield entryOf(row);
      if (page.length < pageSize) return;
      page = this.#nextPage.all(guest, exp, page[page.length - 1]!.path, pageSize);
    }
  }

  /** The row for one name, if recorded. */
  get(guest: string, exp: string, path: string): RecordedEntry | undefined {
    const row = this.#get.get(guest, exp, path);
    return row === undefined ? undefined : entryOf(row);
  }

  /** How many names are recorded for the export. */
  count(guest: string, exp: string): number {
    return this.#count.get(guest, exp)?.n ?? 0;
  }

  /** Drop everything recorded for the export (it was removed from the config, or is to be indexed afresh). */
  forget(guest: string, exp: string): void {
    this.#forget.run(guest, exp);
  }

  #apply(ev: ChangeEvent): void {
    const g = ev.guest;
    const x = ev.export;
    switch (ev.kind) {
      case 'created':
      case 'modified':
      case 'metadata':
      case 'dirCreated':
        this.#write(ev, ev.kind === 'dirCreated' || ev.dir);
        return;
      case 'deleted':
        this.#deleteOne.run(g, x, ev.path, ev.seq);
        return;
      case 'dirDeleted':
        this.#removeTree(g, x, ev.path, ev.seq);
        return;
      case 'renamed':
        this.#rename(ev);
        return;
    }
  }

  // The export root is not an entry: events about it (its mode, its times) leave no row.
  #write(ev: ChangeEvent, dir: boolean): void {
    if (ev.path === '') return;
    this.#upsert.run(ev.guest, ev.export, ev.path, dir ? 1 : 0, ev.size, ev.mtime, ev.ino, ev.seq);
  }

  #removeTree(g: string, x: string, dir: string, seq: number): void {
    if (dir === '') {
      this.#deleteExport.run(g, x, seq);
      return;
    }
    const { lo, hi } = subtreeRange(dir);
    this.#deleteRange.run(g, x, lo, hi, seq);
    this.#deleteOne.run(g, x, dir, seq);
  }

  #rename(ev: ChangeEvent): void {
    const from = ev.oldPath;
    const to = ev.path;
    if (from === undefined || from === '' || to === '' || isUnder(to, from) || isUnder(from, to)) {
      throw new XenfsError('XENFS_ERR_INTERNAL', `impossible rename in ${ev.guest}/${ev.export}: '${from ?? '(none)'}' -> '${to}' (seq ${ev.seq})`);
    }
    if (from !== to) {
      const g = ev.guest;
      const x = ev.export;
      // What the rename replaced (a file, or an empty directory) is gone, and so is any stale row under it.
      this.#removeTree(g, x, to, ev.seq);
      const src = subtreeRange(from);
      // A row that cannot move because a newer one holds its new name stays behind and is then dropped:
      // the newer row wins, as the ordering rule says.
      this.#moveRange.run(`${to}/`, src.lo, g, x, src.lo, src.hi, ev.seq);
      this.#removeTree(g, x, from, ev.seq);
    }
    this.#write(ev, ev.dir);
  }
}

function entryOf(row: Row): RecordedEntry {
  return { path: row.path, dir: row.dir !== 0, size: row.size, mtime: row.mtime, ino: row.ino, seq: row.seq };
}

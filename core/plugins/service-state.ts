// A service's own corner of dom0's state dir: `<stateDir>/services/<name>/` (mode 0700) and the SQLite database
// `state.db` in it. The directory is the service's alone; the database is opened when first asked for (a
// service that keeps no state never creates one) and closed by the runtime after the service stopped.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { XenfsError } from '../errors.ts';
import { SERVICE_NAME } from '../config/services.ts';

/** Milliseconds a statement waits for another connection's lock (a reader tool, a second worker) before SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;
const DIR_MODE = 0o700;

/** Makes `dir` a directory of mode 0700, whatever the umask or an earlier run left; refuses anything else there. */
function privateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new XenfsError('XENFS_ERR_INTERNAL', `${dir} exists and is not a directory`);
  if ((st.mode & 0o777) !== DIR_MODE) fs.chmodSync(dir, DIR_MODE);
}

export class ServiceState {
  /** `<stateDir>/services/<name>`. */
  readonly dir: string;
  readonly #name: string;
  #db: Database.Database | undefined;
  #closed = false;

  /** Creates the service's directory (and `<stateDir>/services`) with mode 0700 if missing. */
  constructor(stateDir: string, name: string) {
    // The name becomes a path component: config and checkDefinition enforce this already; this is the last line.
    if (!SERVICE_NAME.test(name)) throw new XenfsError('XENFS_ERR_INTERNAL', `service name '${name}' is not a valid name`);
    this.#name = name;
    privateDir(path.join(stateDir, 'services'));
    this.dir = path.join(stateDir, 'services', name);
    privateDir(this.dir);
  }

  /** The service's database, opened (WAL, busy timeout) at the first call; the same one after. */
  db(): Database.Database {
    if (this.#closed) throw new XenfsError('XENFS_ERR_INTERNAL', `service ${this.#name}: db() called after stop`);
    if (this.#db === undefined) {
      const db = new Database(path.join(this.dir, 'state.db'), { timeout: SQLITE_BUSY_TIMEOUT_MS });
      try {
        // WAL: the dashboard and CLI may read a service's tables while the service writes them.
        db.pragma('journal_mode = WAL');
      } catch (err) {
        db.close();
        throw err;
      }
      this.#db = db;
    }
    return this.#db;
  }

  /** Closes the database if it was opened; afterwards db() throws. Idempotent. */
  close(): void {
    this.#closed = true;
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }
}

// A service's own directory (0700, whatever the umask or an earlier run left) and its SQLite database: opened
// on first use in WAL mode with a busy timeout, the same connection after, closed at stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { XenfsError } from '../../../core/errors.ts';
import { SQLITE_BUSY_TIMEOUT_MS, ServiceState } from '../../../core/plugins/service-state.ts';

function tempState(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-service-state-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the service directory is <stateDir>/services/<name>, mode 0700 even under a loose umask', (t) => {
  const stateDir = tempState(t);
  const old = process.umask(0o022);
  try {
    const state = new ServiceState(stateDir, 'file-count');
    assert.equal(state.dir, path.join(stateDir, 'services', 'file-count'));
    assert.equal(fs.statSync(state.dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(stateDir, 'services')).mode & 0o777, 0o700);
    state.close();
  } finally {
    process.umask(old);
  }
  // An existing directory left world-readable by hand is tightened again.
  fs.chmodSync(path.join(stateDir, 'services', 'file-count'), 0o755);
  new ServiceState(stateDir, 'file-count').close();
  assert.equal(fs.statSync(path.join(stateDir, 'services', 'file-count')).mode & 0o777, 0o700);
});

test('a bad name or a file in the way is refused', (t) => {
  const stateDir = tempState(t);
  assert.throws(() => new ServiceState(stateDir, '../escape'), (err: unknown) => err instanceof XenfsError);
  assert.ok(!fs.existsSync(path.join(stateDir, 'escape')));
  fs.mkdirSync(path.join(stateDir, 'services'));
  fs.writeFileSync(path.join(stateDir, 'services', 'scanner'), '');
  assert.throws(() => new ServiceState(stateDir, 'scanner'));
});

test('the database opens lazily, in WAL mode with the busy timeout, and is the same on every call', (t) => {
  const stateDir = tempState(t);
  const state = new ServiceState(stateDir, 'indexer');
  t.after(() => state.close());
  const file = path.join(state.dir, 'state.db');
  assert.ok(!fs.existsSync(file), 'no database before the first db()');
  const db = state.db();
  assert.equal(state.db(), db);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('busy_timeout', { simple: true }), SQLITE_BUSY_TIMEOUT_MS);
  db.exec('CREATE TABLE t (x INTEGER)');
  db.prepare('INSERT INTO t VALUES (?)').run(42);
  // Another connection (the dashboard reading) sees committed rows while the service's is open.
  const other = new Database(file, { readonly: true });
  t.after(() => other.close());
  assert.deepEqual(other.prepare('SELECT x FROM t').all(), [{ x: 42 }]);
});

test('close() closes the database; db() after it throws; close is idempotent; data persists', (t) => {
  const stateDir = tempState(t);
  const state = new ServiceState(stateDir, 'backup');
  const db = state.db();
  db.exec('CREATE TABLE runs (id INTEGER PRIMARY KEY); INSERT INTO runs DEFAULT VALUES');
  state.close();
  state.close();
  assert.equal(db.open, false);
  assert.throws(() => state.db(), (err: unknown) => err instanceof XenfsError && /after stop/.test(err.message));
  const again = new ServiceState(stateDir, 'backup');
  t.after(() => again.close());
  assert.deepEqual(again.db().prepare('SELECT id FROM runs').all(), [{ id: 1 }]);
});

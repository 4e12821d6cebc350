// RecordedState over a real SQLite database (a file in a temp dir): what each kind of event does to the
// record, subtree moves and removals with prefixes that a LIKE or a naive prefix test would get wrong, the
// ordering rule by seq, transactions, and paging while the caller writes.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, XenfsError } from '../../../core/errors.ts';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import { RecordedState } from '../../../core/plugins/recorded-state.ts';
import { compareBytes } from '../../../core/plugins/path-order.ts';

function openDb(t: TestContext): Database.Database {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-rs-'));
  const db = new Database(path.join(dir, 'state.db'));
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return db;
}

let seq = 0;
function ev(kind: ChangeEvent['kind'], p: string, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  const dir = kind === 'dirCreated' || kind === 'dirDeleted';
  return { seq: ++seq, guest: 'g', export: 'e', kind, path: p, dir, size: 1, mtime: 1000.25, ino: seq, time: 0, origin: 'guest', ...extra };
}

// A directory is shown with a trailing '/', but sorts by its own path: 'a' (shown 'a/') comes before 'a-b'.
const paths = (s: RecordedState, guest = 'g', exp = 'e'): string[] => [...s.entries(guest, exp)].map((e) => (e.dir ? `${e.path}/` : e.path));

/** Records `names` (a trailing '/' makes a directory) in order. */
function seed(s: RecordedState, names: string[]): void {
  s.applyMany(names.map((n) => (n.endsWith('/') ? ev('dirCreated', n.slice(0, -1)) : ev('created', n))));
}

test('the table is created if missing, and reopening keeps what was recorded', (t) => {
  const db = openDb(t);
  const s1 = new RecordedState(db);
  s1.apply(ev('created', 'f', { size: 42, mtime: 1234.5678, ino: 99 }));
  const s2 = new RecordedState(db);
  assert.deepEqual(s2.get('g', 'e', 'f'), { path: 'f', dir: false, size: 42, mtime: 1234.5678, ino: 99, seq });
  assert.equal(s2.count('g', 'e'), 1);
  const cols = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('xenfs_recorded')").all().map((c) => c.name);
  assert.deepEqual(cols, ['guest', 'export', 'path', 'dir', 'size', 'mtime', 'ino', 'seq']);
});

test('created, modified, metadata and dirCreated write the row; deleted removes it', (t) => {
  const s = new RecordedState(openDb(t));
  s.apply(ev('created', 'a', { size: 1 }));
  s.apply(ev('modified', 'a', { size: 2, mtime: 2000 }));
  assert.equal(s.get('g', 'e', 'a')?.size, 2);
  s.apply(ev('metadata', 'a', { size: 2, mtime: 3000 }));
  assert.equal(s.get('g', 'e', 'a')?.mtime, 3000);
  s.apply(ev('metadata', 'unseen', { size: 5 }));
  assert.equal(s.get('g', 'e', 'unseen')?.size, 5, 'an event about an unrecorded name records it');
  s.apply(ev('dirCreated', 'd'));
  assert.equal(s.get('g', 'e', 'd')?.dir, true);
  s.apply(ev('deleted', 'a'));
  s.apply(ev('deleted', 'never-there'));
  assert.deepEqual(paths(s), ['d/', 'unseen']);
  s.apply(ev('metadata', '', { dir: true }));
  assert.equal(s.get('g', 'e', ''), undefined, 'the export root is not an entry');
});

const TRICKY = [
  'a/', 'a/b/', 'a/b/c', 'a/b/d/', 'a/b/d/e', 'a/bc', 'a/b-c', 'a/b.c', 'a/b%', 'a/b_', 'a/b%/x', 'a/b_/x',
  'a/bé', 'a/b/日本', 'a-b', 'a.b', 'ab', 'x/',
];

test('dirDeleted removes the directory and exactly what is under it', (t) => {
  const s = new RecordedState(openDb(t));
  seed(s, TRICKY);
  s.apply(ev('dirDeleted', 'a/b'));
  assert.deepEqual(paths(s), [
    'a/', 'a-b', 'a.b', 'a/b%', 'a/b%/x', 'a/b-c', 'a/b.c', 'a/b_', 'a/b_/x', 'a/bc', 'a/bé', 'ab', 'x/',
  ]);
  s.apply(ev('dirDeleted', 'a/b%'));
  assert.deepEqual(paths(s).filter((p) => p.startsWith('a/b')), ['a/b-c', 'a/b.c', 'a/b_', 'a/b_/x', 'a/bc', 'a/bé'], '% is not a wildcard');
  s.apply(ev('dirDeleted', ''));
  assert.deepEqual(paths(s), [], 'the root removed: the whole export');
});

test('renamed moves a directory with everything under it, rewriting only the right prefix', (t) => {
  const s = new RecordedState(openDb(t));
  seed(s, [...TRICKY, 'x/y']);
  const before = s.get('g', 'e', 'a/b/d/e');
  s.apply(ev('renamed', 'x/y', { oldPath: 'a/b', dir: true, ino: 777 }));
  assert.deepEqual(paths(s), [
    'a/', 'a-b', 'a.b', 'a/b%', 'a/b%/x', 'a/b-c', 'a/b.c', 'a/b_', 'a/b_/x', 'a/bc', 'a/bé', 'ab',
    'x/', 'x/y/', 'x/y/c', 'x/y/d/', 'x/y/d/e', 'x/y/日本',
  ], 'the file that was at x/y is replaced; a/bc, a/b-c, a/b% stay');
  assert.equal(s.get('g', 'e', 'x/y')?.ino, 777, 'the moved directory carries the event\'s state');
  const moved = s.get('g', 'e', 'x/y/d/e');
  assert.deepEqual({ ...moved, path: before?.path }, before, 'contents keep their state and seq');
  // A prefix with LIKE's wildcards, and names whose length in UTF-16 and in characters differ.
  s.apply(ev('renamed', 'a/😀', { oldPath: 'a/b%', dir: true }));
  s.apply(ev('renamed', 'a/日本語', { oldPath: 'a/😀', dir: true }));
  assert.ok(s.get('g', 'e', 'a/日本語/x'));
  assert.ok(s.get('g', 'e', 'a/b_/x'), 'b_ is not b%');
  assert.equal(s.get('g', 'e', 'a/b%/x'), undefined);
});

test('renamed moves a file, and rejects a rename no filesystem performs', (t) => {
  const s = new RecordedState(openDb(t));
  seed(s, ['d/', 'd/f', 'g']);
  s.apply(ev('renamed', 'g', { oldPath: 'd/f', size: 9 }));
  assert.deepEqual(paths(s), ['d/', 'g']);
  assert.equal(s.get('g', 'e', 'g')?.size, 9);
  for (const bad of [{ oldPath: 'd', path: 'd/sub' }, { oldPath: 'd/sub', path: 'd' }, { path: 'q' }]) {
    assert.throws(() => s.apply(ev('renamed', bad.path, { oldPath: bad.oldPath, dir: true })),
      (err: unknown) => err instanceof XenfsError && err.code === 'XENFS_ERR_INTERNAL');
  }
  assert.deepEqual(paths(s), ['d/', 'g'], 'nothing changed by the rejected ones');
});

test('an older event does not undo a newer one, for single rows and inside subtrees', (t) => {
  const s = new RecordedState(openDb(t));
  const oldDelete = ev('deleted', 'f');
  const oldDirDelete = ev('dirDeleted', 'd');
  const oldRename = ev('renamed', 'm', { oldPath: 'd', dir: true });
  seed(s, ['f', 'd/', 'd/new', 'm/']);
  s.apply(oldDelete);
  s.apply(oldDirDelete);
  assert.deepEqual(paths(s), ['d/', 'd/new', 'f', 'm/'], 'made after the deletions were issued');
  s.apply(oldRename);
  assert.deepEqual(paths(s), ['d/', 'd/new', 'f', 'm/']);
  const stale = ev('modified', 'f', { size: 1234 });
  s.apply(ev('modified', 'f', { size: 5 }));
  s.apply(stale);
  assert.equal(s.get('g', 'e', 'f')?.size, 5);
});

test('applyMany is one transaction: a failing event leaves nothing of the batch', (t) => {
  const s = new RecordedState(openDb(t));
  seed(s, ['keep']);
  assert.throws(() => s.applyMany([ev('created', 'one'), ev('renamed', 'x/y', { oldPath: 'x' }), ev('created', 'two')]));
  assert.deepEqual(paths(s), ['keep']);
  s.applyMany([ev('created', 'one'), ev('created', 'two')]);
  assert.deepEqual(paths(s), ['keep', 'one', 'two']);
});

test('entries come in byte order, a page at a time, and the caller may write between them; forget clears one export', (t) => {
  const s = new RecordedState(openDb(t));
  const names = ['b', 'a', 'a/b', 'a-b', 'a.b', 'é', '\uE000', '😀', 'z'];
  seed(s, names);
  s.apply(ev('created', 'other', { guest: 'g2' }));
  s.apply(ev('created', 'other', { export: 'e2' }));
  const seen: string[] = [];
  for (const e of s.entries('g', 'e', 2)) {
    seen.push(e.path);
    s.apply(ev('modified', e.path, { size: 99 })); // would be "connection busy" under a held cursor
    if (e.path === 'a') s.apply(ev('created', 'zz'));
  }
  assert.deepEqual(seen, [...names, 'zz'].sort(compareBytes));
  assert.ok([...s.entries('g', 'e')].every((e) => e.size === 99 || e.path === 'zz'));
  s.forget('g', 'e');
  assert.equal(s.count('g', 'e'), 0);
  assert.equal(s.count('g2', 'e'), 1);
  assert.equal(s.count('g', 'e2'), 1);
});

test('a database that is not UTF-8 is refused: its BINARY order would not be the path order', (t) => {
  const db = openDb(t);
  db.pragma("encoding = 'UTF-16le'");
  assert.throws(() => new RecordedState(db), (err: unknown) => err instanceof ConfigError && err.key === 'encoding');
});

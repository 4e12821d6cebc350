// walkSorted on real directories: the order is the byte order SQLite gives, symlinks are not entered, ignored
// names are left out with what is under them, a missing root throws, and the walk can be aborted.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type WalkItem, walkKey, walkSorted } from '../../../core/plugins/sorted-walk.ts';
import { compareBytes } from '../../../core/plugins/path-order.ts';
import { Prng } from '../../helpers/prng.ts';

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-walk-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Makes `names` under `root`: a trailing '/' makes a directory, anything else a file holding its name. */
function makeTree(root: string, names: readonly string[]): void {
  for (const n of names) {
    if (n.endsWith('/')) fs.mkdirSync(path.join(root, n), { recursive: true });
    else {
      fs.mkdirSync(path.dirname(path.join(root, n)), { recursive: true });
      fs.writeFileSync(path.join(root, n), n);
    }
  }
}

async function collect(root: string, opts: Parameters<typeof walkSorted>[1] = {}): Promise<WalkItem[]> {
  const out: WalkItem[] = [];
  for await (const item of walkSorted(root, opts)) out.push(item);
  return out;
}

function sqliteOrder(names: readonly string[]): string[] {
  const db = new Database(':memory:');
  try {
    db.exec('CREATE TABLE t (p TEXT PRIMARY KEY COLLATE BINARY) WITHOUT ROWID');
    const ins = db.prepare('INSERT INTO t VALUES (?)');
    for (const n of names) ins.run(n);
    return db.prepare<[], { p: string }>('SELECT p FROM t ORDER BY p').all().map((r) => r.p);
  } finally {
    db.close();
  }
}

const EDGE = ['a/b/c', 'a-b', 'a.b', 'a0', 'ab', 'a/b-c', 'a/b.c', 'a/bc', 'é/x', 'e\u0301', '日本/語', '\uE000', '😀/😀', 'z/'];

test('paths come in the order SQLite sorts them, directories before their contents', async (t) => {
  const root = tempDir(t);
  makeTree(root, EDGE);
  const items = await collect(root);
  const got = items.map((i) => i.path);
  assert.deepEqual(got, sqliteOrder(got), 'byte order');
  assert.deepEqual(got, [
    'a', 'a-b', 'a.b', 'a/b', 'a/b-c', 'a/b.c', 'a/b/c', 'a/bc', 'a0', 'ab', 'e\u0301', 'z', 'é', 'é/x',
    '日本', '日本/語', '\uE000', '😀', '😀/😀',
  ]);
  const dirs = items.filter((i) => i.kind === 'entry' && i.state.dir).map((i) => i.path);
  assert.deepEqual(dirs, ['a', 'a/b', 'z', 'é', '日本', '😀']);
});

test('a seeded random tree walks in byte order', async (t) => {
  const root = tempDir(t);
  const prng = new Prng(20240611);
  const parts = ['a', 'a-', 'a.', 'a0', 'b', 'é', '\uE000', '😀', 'x y'];
  const names = new Set<string>();
  for (let i = 0; i < 120; i++) {
    const depth = 1 + prng.int(3);
    const dirs = Array.from({ length: depth - 1 }, () => prng.pick(parts));
    // Leaves mostly get a number, so that few of them take a name another pick wants as a directory.
    const leaf = prng.pick(parts) + (prng.int(3) === 0 ? '' : String(i));
    names.add([...dirs, leaf].join('/') + (prng.int(4) === 0 ? '/' : ''));
  }
  // A name made a file by one pick and a directory by another: keep the first.
  for (const n of [...names].sort((a, b) => a.length - b.length)) {
    try {
      makeTree(root, [n]);
    } catch {
      names.delete(n);
    }
  }
  const got = (await collect(root)).map((i) => i.path);
  assert.deepEqual(got, [...got].sort(compareBytes));
  assert.deepEqual(got, sqliteOrder(got));
  assert.equal(new Set(got).size, got.length, 'each name once');
  assert.ok(got.length > 40, `a tree of some size (${got.length})`);
});

test('symlinks are entries, never entered; ignored names are left out with their contents', async (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  makeTree(outside, ['secret']);
  makeTree(root, ['d/f', 'skip/inner', 'keep']);
  fs.symlinkSync(outside, path.join(root, 'ln'));
  const items = await collect(root, { ignore: (p) => p === 'skip' });
  assert.deepEqual(items.map((i) => i.path), ['d', 'd/f', 'keep', 'ln']);
  const ln = items.find((i) => i.path === 'ln');
  assert.ok(ln?.kind === 'entry' && !ln.state.dir && ln.state.ino === fs.lstatSync(path.join(root, 'ln')).ino);
});

test('a missing root throws; an aborted walk throws its reason', async (t) => {
  const root = tempDir(t);
  await assert.rejects(collect(path.join(root, 'nope')), /ENOENT/);
  makeTree(root, ['a', 'b', 'c']);
  const ctl = new AbortController();
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const item of walkSorted(root, { signal: ctl.signal })) {
      seen.push(item.path);
      ctl.abort(new Error('stop here'));
    }
  }, /stop here/);
  assert.deepEqual(seen, ['a']);
  assert.equal(walkKey({ kind: 'unreadableTree', path: 'x', error: new Error('e') }), 'x/');
});

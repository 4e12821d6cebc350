// compareBytes against the two orders it must agree with: Buffer.compare over UTF-8, and SQLite's BINARY
// collation, on hand-picked names and on seeded random ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { compareBytes, isUnder, subtreeRange } from '../../../core/plugins/path-order.ts';
import { Prng } from '../../helpers/prng.ts';

const TRICKY = [
  'a', 'a/b', 'a/b/c', 'a-b', 'a.b', 'a0', 'ab', 'a b', 'A', 'a/bc', 'a/b-c', 'a/b.c', 'a/b%', 'a/b_',
  'é', 'e\u0301', 'z', '日本', '\uE000', '\uFFFD', '\uFFFF', '😀', '😀/x', '\u{10FFFF}', '~', '',
];

const byBuffer = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

function sqliteOrder(names: readonly string[]): string[] {
  const db = new Database(':memory:');
  try {
    db.exec('CREATE TABLE t (p TEXT PRIMARY KEY COLLATE BINARY) WITHOUT ROWID');
    const ins = db.prepare('INSERT OR IGNORE INTO t VALUES (?)');
    for (const n of names) ins.run(n);
    return db.prepare<[], { p: string }>('SELECT p FROM t ORDER BY p').all().map((r) => r.p);
  } finally {
    db.close();
  }
}

test('tricky names sort as UTF-8 bytes and as SQLite BINARY does', () => {
  const ours = [...TRICKY].sort(compareBytes);
  assert.deepEqual(ours, [...TRICKY].sort(byBuffer));
  assert.deepEqual(ours, sqliteOrder(TRICKY));
  // The two facts the walk is built on.
  assert.ok(compareBytes('a-b', 'a/b') < 0 && compareBytes('a.b', 'a/b') < 0 && compareBytes('a/b', 'a0') < 0);
  assert.ok(compareBytes('\uE000', '😀') < 0, 'BMP private use before astral, unlike UTF-16 order');
  assert.ok('\uE000' > '😀', 'which is what plain string comparison gets wrong');
});

test('random strings from the troublesome ranges agree with Buffer.compare', () => {
  const prng = new Prng(0x5eed);
  const alphabet = ['a', 'b', '-', '.', '/', '0', '\u00e9', '\u0800', '\uD7FF', '\uE000', '\uFFFF', '😀', '\u{10000}', '\u{1F600}'];
  const names: string[] = [];
  for (let i = 0; i < 2000; i++) {
    let s = '';
    for (let n = prng.int(6); n >= 0; n--) s += prng.pick(alphabet);
    names.push(s);
  }
  for (let i = 0; i + 1 < names.length; i++) {
    const a = names[i]!;
    const b = names[i + 1]!;
    assert.equal(Math.sign(compareBytes(a, b)), Math.sign(byBuffer(a, b)), `case ${i}: ${JSON.stringify([a, b])}`);
  }
  assert.deepEqual([...new Set(names)].sort(compareBytes), sqliteOrder(names));
});

test('isUnder and subtreeRange agree: exactly the strings below the directory', () => {
  for (const dir of ['a', 'a/b', '日本', 'a%', 'a_']) {
    const { lo, hi } = subtreeRange(dir);
    for (const p of [...TRICKY, 'a%/x', 'a_/x', 'aX/x', '日本/語', '日本語']) {
      const inRange = compareBytes(lo, p) <= 0 && compareBytes(p, hi) < 0;
      assert.equal(inRange, isUnder(p, dir), `${p} under ${dir}`);
    }
  }
  assert.equal(isUnder('a', ''), true);
  assert.equal(isUnder('', ''), false);
  assert.equal(isUnder('a/', 'a'), false, 'not a path');
});

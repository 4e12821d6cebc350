// hostChanges alone: what a settled burst of observations on one name amounts to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatState } from '../../../core/events/file-state.ts';
import { hostChanges } from '../../../core/events/host-change.ts';
import type { Burst, Observation } from '../../../core/events/host-change.ts';

const file: StatState = { dir: false, size: 10, mtime: 1000, ino: 7, mode: 0o100644, uid: 1, gid: 1, ctime: 1000 };
const dir: StatState = { ...file, dir: true, size: 4096, mode: 0o40755 };

const burst = (first: Observation, removedDir = false): Burst => ({ first, removedDir });
const kinds = (b: Burst, known: Parameters<typeof hostChanges>[1], now: StatState | null): string[] =>
  hostChanges(b, known, now).map((c) => c.kind);

test('appearing and disappearing', () => {
  assert.deepEqual(kinds(burst('add'), undefined, file), ['created']);
  assert.deepEqual(kinds(burst('addDir'), undefined, dir), ['dirCreated']);
  assert.deepEqual(kinds(burst('add'), undefined, null), [], 'made and removed within the burst');
  assert.deepEqual(kinds(burst('add'), undefined, dir), ['dirCreated'], 'the state now decides the kind');
  assert.deepEqual(kinds(burst('unlink'), file, null), ['deleted']);
  assert.deepEqual(kinds(burst('unlinkDir', true), dir, null), ['dirDeleted']);
});

test('a deletion carries the last known state, or zeros when none was known', () => {
  const [known] = hostChanges(burst('unlink'), file, null);
  assert.deepEqual(known?.state, file);
  const [unknown] = hostChanges(burst('unlink'), undefined, null);
  assert.deepEqual(unknown?.state, { dir: false, size: 0, mtime: 0, ino: 0 });
});

test('a file present before and after: modified, metadata or nothing', () => {
  assert.deepEqual(kinds(burst('change'), file, { ...file, size: 11 }), ['modified']);
  assert.deepEqual(kinds(burst('change'), file, { ...file, mtime: 1001 }), ['modified']);
  assert.deepEqual(kinds(burst('unlink'), file, { ...file, ino: 8 }), ['modified'], 'replaced under the same name');
  assert.deepEqual(kinds(burst('change'), file, { ...file, mode: 0o100600, ctime: 1002 }), ['metadata']);
  assert.deepEqual(kinds(burst('change'), file, { ...file, uid: 2 }), ['metadata']);
  assert.deepEqual(kinds(burst('change'), file, file), [], 'nothing differs');
  assert.deepEqual(kinds(burst('change'), undefined, file), ['modified'], 'never seen: a write cannot be ruled out');
  const fromServer = { dir: false, size: 10, mtime: 1000, ino: 7 };
  assert.deepEqual(kinds(burst('change'), fromServer, file), ['metadata'], 'data as the server left it, mode unknown');
});

test('directories, and names that changed between file and directory', () => {
  assert.deepEqual(kinds(burst('addDir'), dir, { ...dir, mtime: 5 }), ['dirCreated'], 'first says it was absent');
  assert.deepEqual(kinds(burst('unlinkDir', true), dir, { ...dir, ino: 9 }), ['dirDeleted', 'dirCreated']);
  assert.deepEqual(kinds(burst('unlink'), file, dir), ['deleted', 'dirCreated']);
  assert.deepEqual(kinds(burst('unlinkDir', true), dir, file), ['dirDeleted', 'created']);
  assert.deepEqual(kinds(burst('unlink'), dir, null), ['deleted'], 'a stale known state of another kind is not used');
});

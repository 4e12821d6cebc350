import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandleTable } from '../../../core/frontend/fuse-handles.ts';

test('handle numbers start at 1 (0 means none to fuse-native) and freed ones are reused first', () => {
  const t = new HandleTable<string>();
  assert.deepEqual([t.add('a'), t.add('b'), t.add('c')], [1, 2, 3]);
  assert.equal(t.remove(2), 'b');
  assert.equal(t.remove(2), undefined, 'a number is removed once');
  assert.equal(t.get(2), undefined);
  assert.equal(t.add('d'), 2);
  assert.equal(t.add('e'), 4);
  assert.equal(t.size, 4);
  assert.deepEqual(t.drain().sort(), ['a', 'c', 'd', 'e']);
  assert.equal(t.size, 0);
  assert.equal(t.add('f'), 1);
});

test('numbers stay as small as the open set under churn', () => {
  const t = new HandleTable<number>();
  const open: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    if (open.length < 50 || i % 3 === 0) open.push(t.add(i));
    else t.remove(open.splice(i % open.length, 1)[0] as number);
  }
  assert.ok(Math.max(...open) <= 50 + 10_000 / 3 + 1);
  assert.ok(open.every((fd) => fd >= 1 && t.get(fd) !== undefined));
});

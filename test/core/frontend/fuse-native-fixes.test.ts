// The utimens repair reads the true mtime out of fuse-native's thread locals only when their layout checks out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trueMtimeWords } from '../../../core/frontend/fuse-native-fixes.ts';

function locals(atimeMs: number, mtimeMs: number, size = 360): Buffer {
  const l = Buffer.alloc(size);
  l.writeBigUInt64LE(BigInt(atimeMs), 104);
  l.writeBigUInt64LE(BigInt(mtimeMs), 112);
  return l;
}

const words = (ms: number): [number, number] => [ms % 2 ** 32, Math.floor(ms / 2 ** 32)];

test('trueMtimeWords: the mtime field, as the low and high words fuse-native passes', () => {
  const atime = 1_000_000_000_123;
  const mtime = 2_000_000_000_987;
  assert.deepEqual(trueMtimeWords(locals(atime, mtime), ...words(atime)), words(mtime));
});

test('trueMtimeWords: null when the struct is not the known one (size, or atime not where expected)', () => {
  const atime = 1_000_000_000_123;
  assert.equal(trueMtimeWords(locals(atime, 5, 352), ...words(atime)), null);
  assert.equal(trueMtimeWords(locals(atime + 1, 5), ...words(atime)), null);
});

// Regression: a guest's fallocate filled 80 GB of dom0's disk during fuzzing. Growth of any one file is capped by
// the guest's maxFileSize limit, whichever way it grows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';
import { Guest } from '../../../core/frontend/guest.ts';

const MiB = 1 << 20;

test('writes, fallocate and truncate past maxFileSize fail with EFBIG', async () => {
  const dom0 = await Dom0.start({
    config: {
      guests: [{ name: 'capped', secret: 'c', exports: [{ name: 'e', path: 'e' }], limits: { maxFileSize: MiB } }],
    },
  });
  fs.mkdirSync(path.join(dom0.dir, 'e'));
  const g = await Guest.connect({ controlPath: dom0.controlPath, domain: 'capped', secret: 'c' });
  try {
    const f = g.fs();
    const h = await f.open('f', 'w+');
    const block = Buffer.alloc(4096, 1);
    assert.equal((await h.write(block, 0, block.length, MiB - 4096)).bytesWritten, 4096, 'up to the cap is fine');
    await assert.rejects(h.write(block, 0, 1, MiB), { errnoName: 'EFBIG' });
    await assert.rejects(h.allocate(0, 64 * MiB), { errnoName: 'EFBIG' });
    await assert.rejects(h.truncate(2 * MiB), { errnoName: 'EFBIG' });
    await h.close();
    const a = await f.open('g', 'a');
    await a.write(Buffer.alloc(MiB, 2), 0, MiB, null);
    await assert.rejects(a.write(block, 0, 1, null), { errnoName: 'EFBIG' }, 'appends are checked at the real end');
    await a.close();
    assert.equal(fs.statSync(path.join(dom0.dir, 'e', 'f')).size, MiB);
    assert.ok(fs.statSync(path.join(dom0.dir, 'e', 'f')).blocks * 512 <= 2 * MiB, 'no blocks beyond the cap were taken');
  } finally {
    await g.close();
    await dom0.cleanup();
  }
});

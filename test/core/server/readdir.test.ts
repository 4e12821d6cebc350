// Paged readdir over the ring: a directory of 100k entries comes back whole, each name once, in pages that fit
// the guest's buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';
import { Guest } from '../../../core/frontend/guest.ts';

test('a directory of 100k entries is listed completely and exactly once', async () => {
  const dom0 = await Dom0.start({ config: { guests: [{ name: 'lister', secret: 'l', exports: [{ name: 'e', path: 'e' }] }] } });
  try {
    const big = path.join(dom0.dir, 'e', 'big');
    fs.mkdirSync(big, { recursive: true });
    const N = 100_000;
    for (let i = 0; i < N; i++) fs.closeSync(fs.openSync(path.join(big, `entry-${i}`), 'w'));
    const g = await Guest.connect({ controlPath: dom0.controlPath, domain: 'lister', secret: 'l' });
    try {
      for (const bufferSize of [65536, 4096]) {
        const names = await g.fs('e', { readdirBufferSize: bufferSize }).readdir('big');
        assert.equal(names.length, N, `${bufferSize}-byte pages: every entry`);
        const unique = new Set(names);
        assert.equal(unique.size, N, `${bufferSize}-byte pages: no entry twice`);
        for (const probe of [0, 1, 4242, N - 1]) assert.ok(unique.has(`entry-${probe}`));
      }
    } finally {
      await g.close();
    }
  } finally {
    await dom0.cleanup();
  }
});

// WALK with WALK_PEEK answers attributes without keeping a node: stat costs one round trip and leaves nothing
// for the guest to FORGET.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsServer } from '../../../core/server/server.ts';
import { parseConfig } from '../../../core/config/config.ts';
import { Guest } from '../../../core/frontend/guest.ts';
import { encodeRequest } from '../../../core/protocol/encode.ts';
import { decodeResponse } from '../../../core/protocol/decode.ts';
import { Op, WALK_PEEK } from '../../../core/protocol/opcodes.ts';
import { silentLogger } from '../../../core/util/log.ts';

test('stat and lstat peek: no node is kept, symlinks still resolve, unknown flags are refused', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-peek-'));
  fs.mkdirSync(path.join(dir, 'e', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'e', 'sub', 'file'), 'twelve bytes');
  fs.symlinkSync('sub/file', path.join(dir, 'e', 'link'));
  const server = new XenfsServer(parseConfig({
    stateDir: 'state', guests: [{ name: 'p', secret: 's', exports: [{ name: 'e', path: 'e' }] }],
  }, path.join(dir, 'c.json')), silentLogger);
  server.start();
  const g = await Guest.connect({ controlPath: server.controlPath, domain: 'p', secret: 's' });
  try {
    const f = g.fs();
    for (let i = 0; i < 100; i++) assert.equal((await f.stat('sub/file')).size, 12);
    assert.equal(server.guestStats('p')?.nodes, 0, 'a peek keeps no node on dom0');
    assert.ok((await f.lstat('link')).isSymbolicLink());
    assert.equal((await f.stat('link')).size, 12, 'stat still follows the symlink');
    await assert.rejects(f.stat('sub/missing'), { errnoName: 'ENOENT' });
    const bad = encodeRequest({ op: Op.WALK, node: 1, name1: 'sub', arg32a: WALK_PEEK | 2 });
    assert.equal(decodeResponse((await g.transport.call(bad)).slot).status, -22, 'unknown WALK flags are EINVAL');
    await new Promise((r) => setTimeout(r, 50)); // the FORGETs of the symlink walk are fire-and-forget
    assert.equal(server.guestStats('p')?.nodes, 0);
  } finally {
    await g.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

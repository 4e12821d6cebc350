// Per-guest limits from dom0's config, enforced with an errno in the reply (STYLE.md point 10): open handles
// (EMFILE), nodes held by lookups (ENFILE), ring size at connect. A guest at its limit costs the others nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { XenfsError, errno } from '../../../core/errors.ts';
import type { GuestFileHandle } from '../../../core/frontend/file-handle.ts';
import { Op } from '../../../core/protocol/opcodes.ts';
import {
  connectGuest, connectRefused, errnoIs, hostPath, rawCall, uniqueName, withDom0,
} from '../../helpers/fixtures.ts';

const SECRET = 'limits secret';

function config(limited: string, other: string, limits: Record<string, number>): Record<string, unknown> {
  return {
    guests: [
      { name: limited, secret: SECRET, exports: [{ name: 'home', path: 'limited' }], limits },
      { name: other, secret: SECRET, exports: [{ name: 'home', path: 'other' }] },
    ],
  };
}

test('maxHandles 4: the fifth open fails EMFILE, closing one lets another open', async () => {
  const [limited, other] = [uniqueName('handles-limited'), uniqueName('handles-other')];
  await withDom0(config(limited, other, { maxHandles: 4 }), async (dom0, scope) => {
    const g = await connectGuest(dom0, scope, { domain: limited, secret: SECRET });
    const o = await connectGuest(dom0, scope, { domain: other, secret: SECRET });
    assert.equal(g.exports.length, 1);
    const gfs = g.fs();
    const ofs = o.fs();
    for (let i = 0; i < 6; i++) fs.writeFileSync(hostPath(dom0, 'limited', `f${i}`), `file ${i}`);
    const handles: GuestFileHandle[] = [];
    scope.defer(() => Promise.all(handles.map((h) => h.close().catch(() => {}))));
    for (let i = 0; i < 4; i++) handles.push(await gfs.open(`f${i}`, 'r+'));

    await assert.rejects(gfs.open('f4', 'r'), errnoIs('EMFILE'));
    await assert.rejects(gfs.readFile('f4'), errnoIs('EMFILE'));
    await assert.rejects(gfs.readdir(''), errnoIs('EMFILE'));
    // Refused before anything happens: no file created, no file truncated.
    await assert.rejects(gfs.writeFile('new.txt', 'x'), errnoIs('EMFILE'));
    await assert.rejects(gfs.open('f5', 'w'), errnoIs('EMFILE'));
    assert.ok(!fs.existsSync(hostPath(dom0, 'limited', 'new.txt')));
    assert.equal(fs.readFileSync(hostPath(dom0, 'limited', 'f5'), 'utf8'), 'file 5');
    // What needs no handle still works, and the handles already open still do.
    assert.equal((await gfs.stat('f5')).size, 6);
    const buf = Buffer.alloc(6);
    await (handles[0] as GuestFileHandle).read(buf, 0, 6, 0);
    assert.equal(buf.toString(), 'file 0');

    // Another guest on the same server is not held to this guest's limit.
    const theirs = await Promise.all(Array.from({ length: 10 }, (_, i) => ofs.open(`o${i}`, 'w')));
    await Promise.all(theirs.map((h) => h.close()));

    await (handles.shift() as GuestFileHandle).close();
    handles.push(await gfs.open('f4', 'r'));
    await assert.rejects(gfs.open('f0', 'r'), errnoIs('EMFILE'));
    await Promise.all(handles.splice(0).map((h) => h.close()));
    // All four back: four at once succeed, a fifth at once does not.
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => gfs.open(`f${i}`, 'r')));
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    handles.push(...opened);
    assert.equal(opened.length, 4);
    const refused = results.find((r) => r.status === 'rejected');
    assert.ok(refused && errnoIs('EMFILE')(refused.reason));
  });
});

test('maxNodes 16: lookups past it fail ENFILE until one is forgotten', async () => {
  const [limited, other] = [uniqueName('nodes-limited'), uniqueName('nodes-other')];
  await withDom0(config(limited, other, { maxNodes: 16 }), async (dom0, scope) => {
    for (let i = 0; i < 20; i++) fs.writeFileSync(hostPath(dom0, 'limited', `n${i}`), `node ${i}`);
    const g = await connectGuest(dom0, scope, { domain: limited, secret: SECRET });
    const o = await connectGuest(dom0, scope, { domain: other, secret: SECRET });
    const gfs = g.fs();
    // GuestFs forgets every node it looks up; raw WALKs keep theirs, as a guest caching its dentries would.
    const walk = (name: string) => rawCall(g.transport, { op: Op.WALK, node: 1n, name1: name });
    const held: bigint[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await walk(`n${i}`);
      assert.equal(r.status, 0, `WALK n${i}`);
      held.push(r.node);
    }
    assert.equal(new Set(held).size, 16);
    assert.equal((await walk('n16')).status, -errno('ENFILE'));
    assert.equal((await rawCall(g.transport, { op: Op.LOOKUP, node: 1n, name1: 'n17' })).status, -errno('ENFILE'));
    // A stat peeks (WALK_PEEK) and holds no node, so the limit has nothing to refuse there.
    assert.equal((await gfs.stat('n16')).size, 'node 16'.length);
    await assert.rejects(gfs.readFile('n17'), errnoIs('ENFILE'));
    // A node already held is no new node: looking it up again works, and the root is never counted.
    const again = await walk('n3');
    assert.equal(again.status, 0);
    assert.equal(again.node, held[3]);
    assert.equal(await gfs.readFile('n3', 'utf8'), 'node 3');
    assert.equal((await gfs.readdir('')).length, 20);
    // The other guest looks up as many as it likes meanwhile.
    await Promise.all(Array.from({ length: 40 }, (_, i) => o.fs().writeFile(`x${i}`, String(i))));
    assert.equal((await o.fs().readdir('')).length, 40);

    // n3 now carries two lookups: one FORGET leaves it held, the second frees its slot.
    await rawCall(g.transport, { op: Op.FORGET, node: held[3] as bigint, arg64: 1n });
    assert.equal((await walk('n16')).status, -errno('ENFILE'));
    await rawCall(g.transport, { op: Op.FORGET, node: held[3] as bigint, arg64: 1n });
    const freed = await walk('n16');
    assert.equal(freed.status, 0);
    assert.equal((await walk('n17')).status, -errno('ENFILE'));
    // Dropping them all in one FORGET each gives the whole limit back.
    for (const node of [...held.filter((_, i) => i !== 3), freed.node]) {
      await rawCall(g.transport, { op: Op.FORGET, node, arg64: 1n });
    }
    const all = await Promise.all(Array.from({ length: 16 }, (_, i) => walk(`n${i + 4}`)));
    assert.deepEqual(all.map((r) => r.status), Array.from({ length: 16 }, () => 0));
  });
});

test('a create refused at the node limit leaves nothing behind', async () => {
  const [limited, other] = [uniqueName('nodes-create'), uniqueName('nodes-create-other')];
  await withDom0(config(limited, other, { maxNodes: 16 }), async (dom0, scope) => {
    for (let i = 0; i < 16; i++) fs.writeFileSync(hostPath(dom0, 'limited', `n${i}`), '');
    const g = await connectGuest(dom0, scope, { domain: limited, secret: SECRET });
    for (let i = 0; i < 16; i++) {
      assert.equal((await rawCall(g.transport, { op: Op.WALK, node: 1n, name1: `n${i}` })).status, 0);
    }
    const gfs = g.fs();
    await assert.rejects(gfs.mkdir('dir'), errnoIs('ENFILE'));
    await assert.rejects(gfs.writeFile('file', 'x', { flag: 'wx' }), errnoIs('ENFILE'));
    await assert.rejects(gfs.symlink('n0', 'link'), errnoIs('ENFILE'));
    assert.deepEqual(fs.readdirSync(hostPath(dom0, 'limited')).filter((n) => !n.startsWith('n')), []);
  });
});

test('maxRingSlots: a guest asking for a bigger ring is refused at connect', async () => {
  const [limited, other] = [uniqueName('ring-limited'), uniqueName('ring-other')];
  await withDom0(config(limited, other, { maxRingSlots: 16 }), async (dom0, scope) => {
    const err = await connectRefused(dom0, { domain: limited, secret: SECRET, ring: { slots: 32 } });
    assert.ok(err instanceof XenfsError && /maxRingSlots/.test(err.message), String(err));
    const g = await connectGuest(dom0, scope, { domain: limited, secret: SECRET, ring: { slots: 16 } });
    await g.fs().writeFile('ok', 'x');
    const o = await connectGuest(dom0, scope, { domain: other, secret: SECRET, ring: { slots: 64 } });
    await o.fs().writeFile('ok', 'y');
    assert.equal(fs.readFileSync(hostPath(dom0, 'other', 'ok'), 'utf8'), 'y');
  });
});

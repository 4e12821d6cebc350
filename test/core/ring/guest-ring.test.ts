// The shared ring end to end against the real engine (in this process, so its counters can be read): many
// requests per notification, suppressed notifications, a full ring queueing, and persistent grants.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsServer } from '../../../core/server/server.ts';
import { parseConfig } from '../../../core/config/config.ts';
import { Guest } from '../../../core/frontend/guest.ts';
import { encodeRequest } from '../../../core/protocol/encode.ts';
import { decodeResponse } from '../../../core/protocol/decode.ts';
import { Feature, Op } from '../../../core/protocol/opcodes.ts';
import { silentLogger } from '../../../core/util/log.ts';

let dir: string;
let server: XenfsServer;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-ring-'));
  fs.mkdirSync(path.join(dir, 'export'));
  fs.writeFileSync(path.join(dir, 'export', 'data'), Buffer.alloc(1 << 20, 7));
  const guests = ['burst', 'queue', 'plain', 'pers', 'idle'].map((name) => ({
    name,
    secret: 'x',
    exports: [{ name: 'e', path: 'export' }],
    // Counting wake-ups needs dom0 to sleep between batches; the idle test needs the default adaptive polling.
    limits: { spinMicros: name === 'idle' ? 200 : 0 },
  }));
  server = new XenfsServer(parseConfig({ stateDir: 'state', guests }, path.join(dir, 'cfg.json')), silentLogger);
  server.start();
});

after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function getattr(g: Guest): Promise<number> {
  const e = encodeRequest({ op: Op.GETATTR, node: 1 });
  return decodeResponse((await g.transport.call(e)).slot).status;
}

test('a burst goes out under few notifications, and dom0 answers under few', async () => {
  const g = await Guest.connect({ controlPath: server.controlPath, domain: 'burst', secret: 'x', ring: { pollMicros: 0 } });
  const N = 2000;
  const statuses = await Promise.all(Array.from({ length: N }, () => getattr(g)));
  assert.ok(statuses.every((s) => s === 0));
  const st = server.guestStats('burst');
  assert.ok(st);
  assert.equal(st.requests, N);
  // Requests issued in one turn of the event loop are published together: one notification per batch, not per
  // request. The ring holds 64, so at least N/64 batches; anything near N would mean no batching at all.
  assert.ok(st.wakeups < N / 4, `dom0 woke ${st.wakeups} times for ${N} requests`);
  assert.ok(st.notifies < N / 4, `dom0 notified ${st.notifies} times for ${N} responses`);
  await g.close();
});

test('more requests than ring slots wait their turn and all complete', async () => {
  const g = await Guest.connect({ controlPath: server.controlPath, domain: 'queue', secret: 'x', ring: { slots: 8 } });
  const statuses = await Promise.all(Array.from({ length: 100 }, () => getattr(g)));
  assert.deepEqual(new Set(statuses), new Set([0]));
  await g.close();
});

test('data moves through granted pages with and without persistent grants', async () => {
  for (const [domain, persistent] of [['plain', false], ['pers', true]] as const) {
    const g = await Guest.connect({ controlPath: server.controlPath, domain, secret: 'x', ring: { persistent } });
    assert.equal((g.features & Feature.PERSISTENT_GRANTS) !== 0, persistent);
    const f = g.fs();
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (persistent ? 1 : 0)) & 0xff;
    await f.writeFile(`${domain}.bin`, data);
    const back = (await f.readFile(`${domain}.bin`)) as Buffer;
    assert.ok(back.equals(data), `${domain}: read back what was written`);
    const st = server.guestStats(domain);
    assert.ok(st);
    // Per-request grants are unmapped after each request; persistent ones stay mapped while connected.
    const ringPages = Math.ceil((64 + 64 * 512) / 4096); // the default 64-slot ring
    if (persistent) assert.ok(st.mappedGrants > ringPages, `persistent mappings stay (${st.mappedGrants})`);
    else assert.equal(st.mappedGrants, ringPages, 'only the ring stays mapped');
    await g.close();
  }
});

test('an idle guest costs dom0 no CPU: its polling backs off once requests stop', async () => {
  const g = await Guest.connect({ controlPath: server.controlPath, domain: 'idle', secret: 'x' });
  for (let i = 0; i < 2000; i++) assert.equal(await getattr(g), 0); // polling grows to its limit
  await new Promise((r) => setTimeout(r, 100));
  const before = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 500));
  const used = process.cpuUsage(before);
  // dom0's ring thread lives in this process: a thread still polling would show as ~500 ms here.
  assert.ok(used.user + used.system < 100_000, `idle CPU ${(used.user + used.system) / 1000} ms in 500 ms`);
  await g.close();
});

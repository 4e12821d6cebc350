// The bench service of bench:events, run as the runtime runs it: its module checked by checkDefinition, then
// start, handleBatch and stop against a real context (real state directory), and its records read back with
// the bench's own reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseConfig } from '../../../../core/config/config.ts';
import { checkDefinition } from '../../../../core/plugins/check-definition.ts';
import { GuestReader } from '../../../../core/plugins/guest-reader.ts';
import { createServiceContext } from '../../../../core/plugins/service-context.ts';
import type { ChangeEvent, EventOrigin, PolicyHooks, SnapshotHooks } from '../../../../core/index.ts';
import { readRecords } from '../../../../bench/events-records.ts';
import { RECORDS_FILE } from '../../../../bench/services/latency/index.ts';

const MODULE = fileURLToPath(new URL('../../../../bench/services/latency/index.ts', import.meta.url));
const policy: PolicyHooks = {
  deny: () => Promise.reject(new Error('unused')), allow: () => Promise.reject(new Error('unused')),
  denied: () => Promise.resolve([]),
};
const snapshots: SnapshotHooks = { quiesce: () => Promise.reject(new Error('unused')) };

function ev(seq: number, time: number, origin: EventOrigin = 'guest'): ChangeEvent {
  return { seq, guest: 'g1', export: 'home', kind: 'modified', path: `f${seq}`, dir: false, size: 1, mtime: 0, ino: seq, time, origin };
}

test('latency: one record per event (seq, time, handler start, origin), every event done, appended across batches', async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-bench-latency-'));
  t.after(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(stateDir, 'home'));
  const def = checkDefinition(((await import(MODULE)) as { default: unknown }).default, MODULE);
  assert.equal(def.name, 'latency');
  assert.ok(def.handleBatch, 'a batch handler');
  const config = parseConfig({
    stateDir, guests: [{ name: 'g1', secret: 's', exports: [{ name: 'home', path: path.join(stateDir, 'home') }] }],
  }, path.join(stateDir, 'xenfs.yaml'));
  const logger = pino({}, new Writable({ write: (_c, _e, cb) => cb() }));
  const handle = createServiceContext({
    name: 'latency', config: {}, stateDir, logger, reader: new GuestReader(config), policy, snapshots,
  });
  t.after(() => handle.close());
  const ctx = handle.context;
  await def.start?.(ctx);
  const before = Date.now();
  const first = await def.handleBatch([ev(1, 1000.5), ev(2, 1001.25, 'host')], ctx);
  const second = await def.handleBatch([ev(3, 1002)], ctx);
  const after = Date.now();
  await def.stop?.(ctx);
  assert.deepEqual([...first, ...second], [{ status: 'done' }, { status: 'done' }, { status: 'done' }]);

  const r = readRecords(path.join(ctx.stateDir, RECORDS_FILE));
  assert.deepEqual([...r.seq], [1, 2, 3]);
  assert.deepEqual([...r.time], [1000.5, 1001.25, 1002]);
  assert.deepEqual([...r.origin], [0, 1, 0]);
  assert.equal(r.start[0], r.start[1], 'one start per batch');
  for (const s of r.start) assert.ok(s >= before - 1 && s <= after + 1, `start ${s} within the calls`);
});

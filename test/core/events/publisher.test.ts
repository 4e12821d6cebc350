// The publisher against a real redis-server: each service gets the events its subscription selects, in batches
// no larger than asked; the cursor lives in Redis; a Redis that comes back with less than it had gets the rest
// again from the log; while Redis is away nothing is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChangeEvent, NewEvent } from '../../../core/events/change-event.ts';
import { EventLog } from '../../../core/events/event-log.ts';
import { Publisher, matches } from '../../../core/events/publisher.ts';
import { RedisCursor } from '../../../core/events/redis-cursor.ts';
import { ServiceQueues } from '../../../core/events/service-queue.ts';
import { ServiceWorker } from '../../../core/events/service-worker.ts';
import { silentLogger } from '../../../core/util/log.ts';
import { deferrer, startTestRedis, waitUntil, type TestRedis } from '../../helpers/redis.ts';

function ev(i: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    guest: i % 2 ? 'vm1' : 'vm2', export: 'home', kind: i % 3 ? 'modified' : 'created', path: `f${i}`, dir: false,
    size: i, mtime: 1, ino: i, time: Date.now(), origin: 'guest', ...over,
  };
}

interface Rig {
  log: EventLog;
  queues: ServiceQueues;
  cursor: RedisCursor;
  got: Map<string, ChangeEvent[][]>;
}

async function rig(t: { after(fn: () => unknown): void }, redis: TestRedis, services: string[]): Promise<Rig> {
  const defer = deferrer(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xpub-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = new EventLog(dir, { syncIntervalMs: 1 });
  defer(() => log.close());
  const queues = new ServiceQueues({ target: redis.target, logger: silentLogger });
  defer(() => queues.close());
  const cursor = new RedisCursor(redis.target);
  defer(() => cursor.close());
  const got = new Map<string, ChangeEvent[][]>();
  for (const service of services) {
    got.set(service, []);
    const w = new ServiceWorker({
      target: redis.target, service, logger: silentLogger,
      handler: async (events) => {
        got.get(service)?.push(events);
        return events.map(() => 'ok' as const);
      },
    });
    defer(() => w.close());
  }
  return { log, queues, cursor, got };
}

test('each service gets what its subscription selects, in batches of at most batchMax, and the cursor follows', async (t) => {
  const redis = await startTestRedis();
  t.after(() => redis.close());
  const r = await rig(t, redis, ['all', 'vm1-created']);
  const subs = [{ service: 'all' }, { service: 'vm1-created', guests: ['vm1'], kinds: ['created' as const] }];
  const pub = new Publisher(r.log, r.queues, r.cursor, subs, { batchMax: 7, batchWindowMs: 5, logger: silentLogger });
  t.after(() => pub.stop());
  await pub.start();
  for (let i = 1; i <= 60; i++) r.log.append(ev(i));
  const flat = (s: string) => (r.got.get(s) ?? []).flat();
  await waitUntil(() => flat('all').length === 60, 10_000, 'all 60 events for "all"');
  const wanted = flat('all').filter((e) => matches(subs[1]!, e)).map((e) => e.seq);
  await waitUntil(() => flat('vm1-created').length === wanted.length, 5000, 'the filtered events');
  assert.deepEqual(flat('all').map((e) => e.seq), Array.from({ length: 60 }, (_, i) => i + 1));
  assert.deepEqual(flat('vm1-created').map((e) => e.seq), wanted);
  assert.ok(flat('vm1-created').every((e) => e.guest === 'vm1' && e.kind === 'created'));
  assert.ok([...r.got.values()].flat().every((b) => b.length <= 7), 'no batch above batchMax');
  assert.equal(await r.cursor.get(), 60);
  assert.deepEqual({ published: pub.stats().published, stalled: pub.stats().stalled }, { published: 60, stalled: false });
});

test('Redis away: events wait in the log; Redis back with nothing: they are published again from the log', async (t) => {
  const redis = await startTestRedis();
  t.after(() => redis.close());
  const r = await rig(t, redis, ['svc']);
  const pub = new Publisher(r.log, r.queues, r.cursor, [{ service: 'svc' }], { batchMax: 10, batchWindowMs: 5, logger: silentLogger });
  t.after(() => pub.stop());
  await pub.start();
  for (let i = 1; i <= 20; i++) r.log.append(ev(i));
  const seqs = () => (r.got.get('svc') ?? []).flat().map((e) => e.seq);
  await waitUntil(() => seqs().length === 20, 10_000, 'the first 20');
  await redis.redis.stop();
  for (let i = 21; i <= 30; i++) r.log.append(ev(i));
  await waitUntil(() => pub.stats().stalled, 5000, 'the publisher to notice');
  assert.equal(pub.stats().published, 20);
  // Back, but having lost everything (as a Redis whose disk was replaced would): the cursor is gone too.
  fs.rmSync(path.join(redis.dir, 'appendonlydir'), { recursive: true, force: true });
  await redis.redis.start();
  await waitUntil(() => pub.stats().published === 30 && !pub.stats().stalled, 15_000, 'publishing to resume');
  await waitUntil(() => seqs().filter((s) => s > 20).length >= 10, 10_000, 'the 10 written while Redis was away');
  assert.deepEqual([...new Set(seqs())].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.ok(seqs().filter((s) => s <= 20).length >= 40, 'the first 20 were published again: Redis had lost them');
});

test('stop(drainMs) publishes what the log holds before returning', async (t) => {
  const redis = await startTestRedis();
  t.after(() => redis.close());
  const r = await rig(t, redis, ['svc']);
  const pub = new Publisher(r.log, r.queues, r.cursor, [{ service: 'svc' }], { batchMax: 10, batchWindowMs: 1000, logger: silentLogger });
  await pub.start();
  for (let i = 1; i <= 25; i++) r.log.append(ev(i));
  await waitUntil(() => r.log.position().lastSeq === 25, 5000, 'the log to sync');
  assert.equal(await pub.stop(5000), true);
  assert.equal(await r.cursor.get(), 25);
  // Published with a batch window of a second still open: stop() did not wait for it, and nothing was left.
  await waitUntil(() => (r.got.get('svc') ?? []).flat().length === 25, 5000, 'the worker to get all 25');
});

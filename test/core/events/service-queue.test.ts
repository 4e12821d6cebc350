import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { ConfigError, DisconnectedError, LimitError } from '../../../core/errors.ts';
import { BATCH_JOB_NAME, BadEventError } from '../../../core/events/batch-job.ts';
import { ServiceQueues, type ServiceQueuesOptions } from '../../../core/events/service-queue.ts';
import { makeEvents, recordingLogger, startTestRedis, type TestRedis } from '../../helpers/redis.ts';

let r: TestRedis;
before(async () => {
  r = await startTestRedis();
});
after(async () => {
  await r.close();
});

let serial = 0;
/** A service name no other test of this file uses. */
const service = (): string => `svc-${++serial}`;

async function queues(t: { after(fn: () => unknown): void }, opts: Partial<ServiceQueuesOptions> = {}): Promise<ServiceQueues> {
  const q = new ServiceQueues({ target: r.target, logger: recordingLogger(), ...opts });
  t.after(() => q.close());
  await q.waitUntilReady();
  return q;
}

/** A plain BullMQ view of a service's queue, to look at what ServiceQueues wrote. */
function peek(t: { after(fn: () => unknown): void }, name: string): Queue {
  const q = new Queue(name, { connection: { path: r.target.path }, prefix: 'xenfs' });
  t.after(() => q.close());
  return q;
}

test('addBatch puts one job holding the events, with the service settings as job options', async (t) => {
  const svc = service();
  const q = await queues(t, { defaults: { attempts: 3 }, services: { [svc]: { backoffMs: 250, keepFailed: 7 } } });
  const events = makeEvents(100, 4);
  assert.equal(await q.addBatch(svc, events), '100-103');
  assert.deepEqual(await q.counts(svc), { waiting: 1, active: 0, delayed: 0, failed: 0, completed: 0 });
  const job = await peek(t, svc).getJob('100-103');
  assert.ok(job);
  assert.equal(job.name, BATCH_JOB_NAME);
  assert.deepEqual(job.data, { events });
  assert.equal(job.opts.attempts, 3);
  assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 250 });
  assert.equal(job.opts.removeOnComplete, true);
  assert.deepEqual(job.opts.removeOnFail, { count: 7 });
  // Per-call overrides win.
  await q.addBatch(svc, makeEvents(200, 1), { attempts: 1 });
  assert.equal((await peek(t, svc).getJob('200-200'))?.opts.attempts, 1);
});

test('the same batch added twice is one job', async (t) => {
  const svc = service();
  const q = await queues(t);
  const events = makeEvents(1, 10);
  assert.equal(await q.addBatch(svc, events), '1-10');
  assert.equal(await q.addBatch(svc, events), '1-10');
  await q.addBatches([{ service: svc, events }, { service: svc, events }]);
  assert.equal((await q.counts(svc)).waiting, 1);
});

test('addBatches fills several services at once and returns ids in order', async (t) => {
  const [a, b] = [service(), service()];
  const q = await queues(t);
  const ids = await q.addBatches([
    { service: a, events: makeEvents(1, 2) },
    { service: b, events: makeEvents(1, 3) },
    { service: a, events: makeEvents(3, 2) },
  ]);
  assert.deepEqual(ids, ['1-2', '1-3', '3-4']);
  assert.equal((await q.counts(a)).waiting, 2);
  assert.equal((await q.counts(b)).waiting, 1);
});

test('malformed batches, oversized batches and bad names are refused before anything is added', async (t) => {
  const svc = service();
  const q = await queues(t, { maxBatchEvents: 5 });
  const bad = makeEvents(1, 2).map((e, i) => (i === 1 ? { ...e, path: '../escape' } : e));
  await assert.rejects(q.addBatches([{ service: svc, events: makeEvents(10, 1) }, { service: svc, events: bad }]), (err: unknown) => {
    assert.ok(err instanceof BadEventError);
    assert.equal(err.at, 'batches[1].events[1].path');
    return true;
  });
  await assert.rejects(q.addBatch(svc, []), BadEventError);
  await assert.rejects(q.addBatch(svc, makeEvents(1, 6)), (err: unknown) => err instanceof LimitError && err.limit === 'maxBatchEvents');
  await assert.rejects(q.addBatch('no:colons', makeEvents(1, 1)), ConfigError);
  assert.equal((await q.counts(svc)).waiting, 0);
});

test('settings are checked when given', () => {
  const target = { path: '/nonexistent.sock' };
  assert.throws(() => new ServiceQueues({ target, defaults: { attempts: 0 } }), /queues: defaults.attempts: must be an integer/);
  assert.throws(() => new ServiceQueues({ target, services: { x: { backoff: 3 } as never } }), /services.x.backoff: is not a known key/);
  assert.throws(() => new ServiceQueues({ target, maxBatchEvents: 0 }), ConfigError);
});

test('while Redis is down, adding fails at once with DisconnectedError; afterwards it works again', async (t) => {
  const svc = service();
  const q = await queues(t);
  await q.addBatch(svc, makeEvents(1, 1));
  await r.redis.stop();
  try {
    const started = Date.now();
    await assert.rejects(q.addBatch(svc, makeEvents(2, 1)), DisconnectedError);
    await assert.rejects(q.counts(svc), DisconnectedError);
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms to fail`);
  } finally {
    await r.redis.start();
  }
  await q.waitUntilReady();
  await q.addBatch(svc, makeEvents(2, 1));
  // The first batch was written before the clean stop, so the append-only file kept it.
  assert.equal((await q.counts(svc)).waiting, 2);
});

test('a producer that never connects says so', async () => {
  const q = new ServiceQueues({ target: { path: '/nonexistent/redis.sock' }, logger: recordingLogger() });
  try {
    await assert.rejects(q.waitUntilReady(200), /not ready within 200 ms/);
    await assert.rejects(q.addBatch('svc', makeEvents(1, 1)), DisconnectedError);
  } finally {
    await q.close();
  }
});

test('close is idempotent and later calls fail cleanly', async (t) => {
  const q = await queues(t);
  await q.counts(service());
  await Promise.all([q.close(), q.close()]);
  await q.close();
  await assert.rejects(q.addBatch(service(), makeEvents(1, 1)), /service queues closed/);
});

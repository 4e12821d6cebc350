// What happens to batches when a worker's process dies, or Redis itself does: nothing is lost, and the queue
// recovers by itself within seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import { ServiceQueues } from '../../../core/events/service-queue.ts';
import { ServiceWorker } from '../../../core/events/service-worker.ts';
import { deferrer, makeEvents, recordingLogger, sleep, startTestRedis, waitUntil } from '../../helpers/redis.ts';

const CHILD = fileURLToPath(new URL('../../helpers/queue-worker-child.ts', import.meta.url));

test('a worker killed hard mid-batch: the stalled check hands the batch to another worker', async (t) => {
  const defer = deferrer(t);
  const r = await startTestRedis();
  defer(() => r.close());
  const q = new ServiceQueues({ target: r.target, logger: recordingLogger() });
  defer(() => q.close());
  await q.waitUntilReady();

  const lockDuration = 1500;
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, r.target.path, 'victim', String(lockDuration)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  defer(() => child.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  await waitUntil(() => lines.some((l) => l.ready), 10_000, 'the child worker to be ready');
  await q.addBatch('victim', makeEvents(1, 3));
  await waitUntil(() => lines.some((l) => l.started === '1-3'), 5000, 'the child to start the batch');
  child.kill('SIGKILL');
  await exited;
  const killedAt = Date.now();
  assert.equal((await q.counts('victim')).active, 1);

  const stalledInterval = 500;
  const handled: Array<{ seqs: number[]; attempt: number; at: number }> = [];
  const rescuer = new ServiceWorker({
    target: r.target,
    service: 'victim',
    stalledInterval,
    logger: recordingLogger(),
    handler: async (events, info) => {
      handled.push({ seqs: events.map((e) => e.seq), attempt: info.attempt, at: Date.now() });
      return events.map(() => 'ok' as const);
    },
  });
  defer(() => rescuer.close());
  // The lock the dead worker held expires, then one stalled check marks the batch and the next moves it.
  const bound = lockDuration + 2 * stalledInterval + 2000;
  await waitUntil(() => handled.length === 1, bound, 'the batch to be handled again');
  assert.deepEqual(handled[0]?.seqs, [1, 2, 3]);
  // A stall is not a failed attempt.
  assert.equal(handled[0]?.attempt, 1);
  // Not before the dead worker's lock could have expired (it is renewed every lockDuration / 2).
  assert.ok((handled[0]?.at ?? 0) - killedAt >= lockDuration / 2, 'taken over while the lock still held');
  await waitUntil(async () => (await q.counts('victim')).active === 0, 2000, 'the batch to complete');
  assert.deepEqual(await q.counts('victim'), { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
});

test('Redis killed under a connected worker and restarted: the worker reconnects and nothing is lost', async (t) => {
  const defer = deferrer(t);
  const r = await startTestRedis();
  defer(() => r.close());
  const q = new ServiceQueues({ target: r.target, logger: recordingLogger() });
  defer(() => q.close());
  await q.waitUntilReady();

  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const handled: number[] = [];
  const w = new ServiceWorker({
    target: r.target,
    service: 'survivor',
    logger: recordingLogger(),
    handler: async (events: ChangeEvent[]) => {
      if (events[0]?.seq === 1) await gate;
      handled.push(...events.map((e) => e.seq));
      return events.map(() => 'ok' as const);
    },
  });
  defer(() => w.close({ timeoutMs: 1000 }));
  await w.waitUntilReady();
  await q.addBatches([1, 2, 3].map((seq) => ({ service: 'survivor', events: makeEvents(seq, 1) })));
  await waitUntil(() => w.stats.inFlight === 1, 5000, 'the first batch to start');
  // appendfsync everysec: what Redis took in the last second may not be on disk yet when it is killed. Wait
  // past that, so the two batches still waiting are certainly in the append-only file.
  await sleep(1200);
  await r.redis.kill();
  // The running batch finishes while Redis is away; its completion waits in the worker for the reconnection.
  release();
  await sleep(300);
  assert.deepEqual(handled, [1]);
  await r.redis.start();

  await waitUntil(() => handled.includes(2) && handled.includes(3), 10_000, 'the waiting batches to be handled');
  await q.waitUntilReady();
  await q.addBatch('survivor', makeEvents(4, 1));
  await waitUntil(() => handled.includes(4), 5000, 'a batch added after the restart to be handled');
  await waitUntil(async () => {
    const c = await q.counts('survivor');
    return c.waiting + c.active + c.delayed + c.failed === 0;
  }, 5000, 'the queue to be empty');
  // Batch 1 may run twice (if its lock had lapsed, at-least-once); the others exactly once.
  assert.deepEqual(handled.filter((s) => s !== 1), [2, 3, 4]);
});

test('close is bounded while Redis is down, and a batch it could not give back is recovered later', async (t) => {
  const defer = deferrer(t);
  const r = await startTestRedis();
  defer(() => r.close());
  const q = new ServiceQueues({ target: r.target, logger: recordingLogger() });
  defer(() => q.close());
  await q.waitUntilReady();

  const lockDuration = 1500;
  const hung = new ServiceWorker({
    target: r.target, service: 'stranded', lockDuration, logger: recordingLogger(), handler: () => new Promise(() => {}),
  });
  defer(() => hung.close());
  await q.addBatch('stranded', makeEvents(1, 2));
  await waitUntil(() => hung.stats.inFlight === 1, 5000, 'the handler to start');
  await sleep(1200); // past appendfsync everysec: the batch's active state is on disk
  await r.redis.kill();
  const started = Date.now();
  await hung.close({ timeoutMs: 300 });
  assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms with Redis down`);

  await r.redis.start();
  const handled: number[][] = [];
  const rescuer = new ServiceWorker({
    target: r.target,
    service: 'stranded',
    stalledInterval: 500,
    logger: recordingLogger(),
    handler: async (events) => {
      handled.push(events.map((e) => e.seq));
      return events.map(() => 'ok' as const);
    },
  });
  defer(() => rescuer.close());
  await waitUntil(() => handled.length === 1, lockDuration + 2 * 500 + 3000, 'the stranded batch to be handled');
  assert.deepEqual(handled, [[1, 2]]);
});

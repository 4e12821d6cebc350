import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { ConfigError } from '../../../core/errors.ts';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import { BATCH_JOB_NAME } from '../../../core/events/batch-job.ts';
import { ServiceQueues } from '../../../core/events/service-queue.ts';
import {
  ServiceWorker, type BatchDone, type BatchFailed, type BatchHandler, type BatchInfo, type ServiceWorkerOptions,
} from '../../../core/events/service-worker.ts';
import { makeEvents, recordingLogger, sleep, startTestRedis, waitUntil, type TestRedis } from '../../helpers/redis.ts';

type T = { after(fn: () => unknown): void };

let r: TestRedis;
let q: ServiceQueues;
before(async () => {
  r = await startTestRedis();
  q = new ServiceQueues({ target: r.target, logger: recordingLogger() });
  await q.waitUntilReady();
});
after(async () => {
  await q.close();
  await r.close();
});

let serial = 0;
const service = (): string => `work-${++serial}`;

function worker(t: T, svc: string, handler: BatchHandler, opts: Partial<ServiceWorkerOptions> = {}): ServiceWorker {
  const w = new ServiceWorker({ target: r.target, service: svc, handler, logger: recordingLogger(), ...opts });
  t.after(() => w.close({ timeoutMs: 500 }));
  return w;
}

const allOk = (events: ChangeEvent[]): Promise<Array<'ok'>> => Promise.resolve(events.map(() => 'ok' as const));
const seqs = (events: ChangeEvent[]): number[] => events.map((e) => e.seq);

/** Every batch-done and batch-failed of `w`, in order. */
function record(w: ServiceWorker): { done: BatchDone[]; failed: BatchFailed[] } {
  const out = { done: [] as BatchDone[], failed: [] as BatchFailed[] };
  w.on('batch-done', (d) => out.done.push(d));
  w.on('batch-failed', (f) => out.failed.push(f));
  return out;
}

async function drained(svc: string, ms = 5000): Promise<void> {
  await waitUntil(async () => {
    const c = await q.counts(svc);
    return c.waiting + c.active + c.delayed === 0;
  }, ms, `${svc} to drain`);
}

test('a batch is handled once, whole, and then deleted', async (t) => {
  const svc = service();
  const calls: Array<{ seqs: number[]; info: BatchInfo }> = [];
  const w = worker(t, svc, async (events, info) => {
    calls.push({ seqs: seqs(events), info });
    return allOk(events);
  });
  const seen = record(w);
  const events = makeEvents(1, 5);
  await q.addBatch(svc, events);
  await waitUntil(() => seen.done.length === 1, 5000, 'batch-done');
  await drained(svc);
  await sleep(200);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0]?.seqs, [1, 2, 3, 4, 5]);
  assert.equal(calls[0]?.info.attempt, 1);
  assert.equal(calls[0]?.info.jobId, '1-5');
  assert.equal(seen.done[0]?.events, 5);
  assert.deepEqual(await q.counts(svc), { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
  const s = w.stats;
  assert.equal(s.jobsDone, 1);
  assert.equal(s.eventsDone, 5);
  assert.equal(s.eventsFailed, 0);
  assert.ok(s.lastHandledAt !== null && Date.now() - s.lastHandledAt < 5000);
});

test('only the failed events are retried, with growing attempt numbers and exponential backoff', async (t) => {
  const svc = service();
  const calls: Array<{ seqs: number[]; attempt: number; at: number }> = [];
  // Attempt 1 fails seqs 2 and 4; attempt 2 fails 4 again; attempt 3 succeeds.
  const failing = [new Set([2, 4]), new Set([4]), new Set<number>()];
  const w = worker(t, svc, async (events, info) => {
    calls.push({ seqs: seqs(events), attempt: info.attempt, at: Date.now() });
    const fail = failing[info.attempt - 1] ?? new Set();
    return events.map((e) => (fail.has(e.seq) ? new Error(`cannot index ${e.path}`) : 'ok'));
  });
  const seen = record(w);
  await q.addBatch(svc, makeEvents(1, 5), { attempts: 3, backoffMs: 200 });
  await waitUntil(() => seen.done.length === 1, 8000, 'the batch to succeed');
  await drained(svc);
  assert.deepEqual(calls.map((c) => [c.attempt, c.seqs]), [[1, [1, 2, 3, 4, 5]], [2, [2, 4]], [3, [4]]]);
  const [c1, c2, c3] = calls as [typeof calls[0], typeof calls[0], typeof calls[0]];
  assert.ok(c2.at - c1.at >= 190, `first retry after ${c2.at - c1.at} ms, backoff 200`);
  assert.ok(c3.at - c2.at >= 390, `second retry after ${c3.at - c2.at} ms, backoff 400`);
  assert.deepEqual(seen.failed.map((f) => [f.attempt, f.failures.map((x) => x.seq), f.willRetry]), [[1, [2, 4], true], [2, [4], true]]);
  assert.match(seen.failed[0]?.reason ?? '', /^2 of 5 events failed: #2 modified 'dir\/f2': cannot index dir\/f2; #4/);
  const s = w.stats;
  assert.deepEqual([s.jobsDone, s.jobsFailed, s.eventsDone, s.eventsFailed], [1, 2, 5, 3]);
});

test('an event that keeps failing leaves its batch in the failed set, visible with its reason', async (t) => {
  const svc = service();
  const calls: number[][] = [];
  const w = worker(t, svc, async (events) => {
    calls.push(seqs(events));
    return events.map((e) => (e.seq === 3 ? Object.assign(new Error('disk on fire'), { code: 'EIO' }) : 'ok'));
  });
  const seen = record(w);
  await q.addBatch(svc, makeEvents(1, 4), { attempts: 2, backoffMs: 50 });
  await waitUntil(async () => (await q.counts(svc)).failed === 1, 5000, 'the batch to fail for good');
  assert.deepEqual(calls, [[1, 2, 3, 4], [3]]);
  assert.deepEqual(seen.failed.map((f) => f.willRetry), [true, false]);
  const [failed] = await q.failed(svc);
  assert.ok(failed);
  assert.equal(failed.jobId, '1-4');
  assert.equal(failed.attemptsMade, 2);
  assert.ok(failed.failedAt !== null);
  assert.equal(failed.reason, "1 of 1 events failed: #3 modified 'dir/f3': disk on fire");
  assert.deepEqual(failed.events?.map((e) => e.seq), [1, 2, 3, 4]);
  assert.deepEqual(failed.done, [0, 1, 3], 'the indexes of the events handled: all but the third');
  assert.deepEqual(failed.failures, [{ seq: 3, kind: 'modified', path: 'dir/f3', message: 'disk on fire', code: 'EIO' }]);
});

test('a handler that throws fails every event of the batch; a broken outcome list too', async (t) => {
  const svc = service();
  let call = 0;
  worker(t, svc, async (events) => {
    call += 1;
    if (call === 1) throw new Error('index locked');
    return events.slice(1).map(() => 'ok' as const);
  });
  await q.addBatches([{ service: svc, events: makeEvents(1, 2), opts: { attempts: 1 } }]);
  await waitUntil(async () => (await q.counts(svc)).failed === 1, 5000, 'the first batch to fail');
  await q.addBatch(svc, makeEvents(10, 3), { attempts: 1 });
  await waitUntil(async () => (await q.counts(svc)).failed === 2, 5000, 'the second batch to fail');
  const byId = new Map((await q.failed(svc)).map((f) => [f.jobId, f]));
  assert.deepEqual(byId.get('1-2')?.failures.map((f) => [f.seq, f.message]), [[1, 'index locked'], [2, 'index locked']]);
  assert.deepEqual(byId.get('10-12')?.failures.map((f) => f.seq), [10, 11, 12]);
  assert.match(byId.get('10-12')?.failures[0]?.message ?? '', /returned 2 outcomes for 3 events/);
});

test('malformed job data fails at once, without retry, and the handler never sees it', async (t) => {
  const svc = service();
  const calls: number[][] = [];
  const w = worker(t, svc, async (events) => {
    calls.push(seqs(events));
    return allOk(events);
  });
  const seen = record(w);
  const raw = new Queue(svc, { connection: { path: r.target.path }, prefix: 'xenfs' });
  t.after(() => raw.close());
  const opts = { attempts: 5, backoff: { type: 'exponential', delay: 10 }, removeOnFail: { count: 10 } };
  const [good, bad] = [makeEvents(1, 1)[0], makeEvents(2, 1)[0]] as [ChangeEvent, ChangeEvent];
  await raw.add(BATCH_JOB_NAME, { events: [good, { ...bad, path: '../../etc/shadow' }] }, { ...opts, jobId: 'escape' });
  await raw.add('change-events/0', { events: [good] }, { ...opts, jobId: 'old-format' });
  await raw.add(BATCH_JOB_NAME, 'garbage', { ...opts, jobId: 'garbage' });
  await q.addBatch(svc, makeEvents(5, 1));
  await waitUntil(async () => (await q.counts(svc)).failed === 3 && seen.done.length === 1, 5000, 'three refusals and one success');
  assert.deepEqual(calls, [[5]]);
  const byId = new Map((await q.failed(svc)).map((f) => [f.jobId, f]));
  assert.match(byId.get('escape')?.reason ?? '', /events\[1\]\.path: .*not a relative path/);
  assert.match(byId.get('old-format')?.reason ?? '', /job name "change-events\/0"/);
  assert.match(byId.get('garbage')?.reason ?? '', /data: must be an object/);
  for (const f of byId.values()) {
    assert.equal(f.attemptsMade, 1, `${f.jobId} was retried`);
    assert.equal(f.events, null);
  }
  assert.equal(w.stats.jobsInvalid, 3);
  assert.deepEqual(seen.failed.map((f) => f.willRetry), [false, false, false]);
});

test('concurrency is honoured', async (t) => {
  const svc = service();
  let running = 0;
  let peak = 0;
  worker(t, svc, async (events) => {
    running += 1;
    peak = Math.max(peak, running);
    await sleep(150);
    running -= 1;
    return allOk(events);
  }, { concurrency: 3 });
  await q.addBatches(Array.from({ length: 9 }, (_, i) => ({ service: svc, events: makeEvents(i * 10 + 1, 2) })));
  await drained(svc);
  assert.equal(peak, 3);
});

test('the rate limit is honoured', async (t) => {
  const svc = service();
  const starts: number[] = [];
  worker(t, svc, async (events) => {
    starts.push(Date.now());
    return allOk(events);
  }, { concurrency: 4, limiter: { max: 2, duration: 400 } });
  await q.addBatches(Array.from({ length: 6 }, (_, i) => ({ service: svc, events: makeEvents(i + 1, 1) })));
  await drained(svc, 8000);
  assert.equal(starts.length, 6);
  starts.sort((a, b) => a - b);
  for (let i = 0; i + 2 < starts.length; i++) {
    const gap = (starts[i + 2] as number) - (starts[i] as number);
    assert.ok(gap >= 380, `batches ${i} and ${i + 2} started ${gap} ms apart; at most 2 per 400 ms`);
  }
});

test('completed batches are deleted: the queue\'s keys stay the same under a sustained flow', async (t) => {
  const svc = service();
  worker(t, svc, allOk, { concurrency: 8 });
  const flow = async (from: number, batches: number): Promise<void> => {
    for (let i = 0; i < batches; i += 20) {
      await q.addBatches(Array.from({ length: 20 }, (_, j) => ({ service: svc, events: makeEvents(from + (i + j) * 10, 10) })));
    }
    await drained(svc, 10_000);
  };
  // stalled-check comes and goes (it has a TTL); everything else of the queue's must stay as it is.
  const lasting = async (): Promise<string[]> => (await r.admin.keys(`xenfs:${svc}:*`)).filter((k) => !k.endsWith(':stalled-check')).sort();
  await flow(0, 40);
  const keys = await lasting();
  await flow(100_000, 400);
  assert.deepEqual(await lasting(), keys);
  assert.deepEqual(keys, [`xenfs:${svc}:events`, `xenfs:${svc}:id`, `xenfs:${svc}:meta`]);
  // BullMQ's event stream is trimmed (approximately) to 1000 entries instead of its default 10 000.
  const streamLen = await r.admin.xlen(`xenfs:${svc}:events`);
  assert.ok(streamLen > 500 && streamLen <= 1200, `event stream holds ${streamLen} entries`);
});

test('close waits for a slow handler, which finishes its batch', async (t) => {
  const svc = service();
  let finished = false;
  const w = worker(t, svc, async (events) => {
    await sleep(600);
    finished = true;
    return allOk(events);
  });
  const seen = record(w);
  await q.addBatch(svc, makeEvents(1, 3));
  await waitUntil(() => w.stats.inFlight === 1, 5000, 'the handler to start');
  const started = Date.now();
  await w.close({ timeoutMs: 5000 });
  assert.ok(finished);
  assert.ok(Date.now() - started >= 400);
  assert.equal(seen.done.length, 1);
  assert.deepEqual(await q.counts(svc), { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
});

test('close gives a hung handler\'s batch back, and another worker handles it at once', async (t) => {
  const svc = service();
  let signal: AbortSignal | null = null;
  const hung = worker(t, svc, (_events, info) => {
    signal = info.signal;
    return new Promise(() => {});
  });
  await q.addBatch(svc, makeEvents(1, 2), { attempts: 1 });
  await waitUntil(() => hung.stats.inFlight === 1, 5000, 'the handler to start');
  const started = Date.now();
  await hung.close({ timeoutMs: 300 });
  assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
  assert.equal((signal as AbortSignal | null)?.aborted, true);
  assert.equal((await q.counts(svc)).waiting, 1);

  const attempts: number[] = [];
  worker(t, svc, async (events, info) => {
    attempts.push(info.attempt);
    return allOk(events);
  });
  await drained(svc, 3000);
  // Giving back is not a failure: the batch's single attempt is still its first.
  assert.deepEqual(attempts, [1]);
  assert.equal((await q.counts(svc)).failed, 0);
});

test('options are checked', () => {
  const base = { target: r.target, service: 'x', handler: allOk, logger: recordingLogger() };
  assert.throws(() => new ServiceWorker({ ...base, concurrency: 0 }), ConfigError);
  assert.throws(() => new ServiceWorker({ ...base, limiter: { max: 1, duration: 0.5 } }), /limiter.duration/);
  assert.throws(() => new ServiceWorker({ ...base, service: 'a:b' }), ConfigError);
});

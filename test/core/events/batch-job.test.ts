import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ERROR_CODES } from '../../../core/errors.ts';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import {
  BATCH_JOB_NAME, BadEventError, EventsFailedError, MAX_FAILURE_MESSAGE, batchJobId, checkServiceName, failureOf, parseBatchJob,
  parseChangeEvent, parseEvents,
} from '../../../core/events/batch-job.ts';
import { makeEvents } from '../../helpers/redis.ts';
import { Prng } from '../../helpers/prng.ts';

const good = (): ChangeEvent => ({ ...(makeEvents(7, 1)[0] as ChangeEvent) });

function rejects(v: unknown, at: string | RegExp): void {
  assert.throws(() => parseChangeEvent(v, 'e'), (err: unknown) => {
    assert.ok(err instanceof BadEventError, String(err));
    assert.equal(err.code, 'XENFS_ERR_BAD_EVENT');
    if (typeof at === 'string') assert.equal(err.at, at);
    else assert.match(err.at, at);
    return true;
  });
}

test('the error codes of the job format are registered', () => {
  assert.ok(Object.hasOwn(ERROR_CODES, new BadEventError('x', 'y').code));
  assert.ok(Object.hasOwn(ERROR_CODES, new EventsFailedError([], 0).code));
});

test('a valid event comes back equal, with unknown fields dropped', () => {
  const e = good();
  assert.deepEqual(parseChangeEvent({ ...e, extra: 'from a newer version' }), e);
  const renamed = { ...e, kind: 'renamed', oldPath: 'old/name' };
  assert.deepEqual(parseChangeEvent(renamed), renamed);
  const root = { ...e, kind: 'metadata', path: '', dir: true };
  assert.deepEqual(parseChangeEvent(root), root);
});

test('every field is checked and the error names it', () => {
  rejects(null, 'e');
  rejects([good()], 'e');
  rejects({ ...good(), kind: 'exploded' }, 'e.kind');
  rejects({ ...good(), seq: -1 }, 'e.seq');
  rejects({ ...good(), seq: 1.5 }, 'e.seq');
  rejects({ ...good(), seq: 2 ** 53 }, 'e.seq');
  rejects({ ...good(), seq: '7' }, 'e.seq');
  rejects({ ...good(), guest: '' }, 'e.guest');
  rejects({ ...good(), export: 3 }, 'e.export');
  rejects({ ...good(), dir: 'no' }, 'e.dir');
  rejects({ ...good(), kind: 'dirCreated', dir: false }, 'e.dir');
  rejects({ ...good(), size: Number.NaN }, 'e.size');
  rejects({ ...good(), mtime: Infinity }, 'e.mtime');
  rejects({ ...good(), ino: -5 }, 'e.ino');
  rejects({ ...good(), time: null }, 'e.time');
  rejects({ ...good(), origin: 'elsewhere' }, 'e.origin');
  rejects({ ...good(), kind: 'renamed' }, 'e.oldPath');
  rejects({ ...good(), oldPath: 'a' }, 'e.oldPath');
});

test('paths cannot climb out of the export', () => {
  for (const p of ['/etc/passwd', '../x', 'a/../../x', 'a//b', 'a/./b', 'a/', '.', '..', 'a\0b']) {
    rejects({ ...good(), path: p }, 'e.path');
  }
  rejects({ ...good(), kind: 'renamed', oldPath: '../outside' }, 'e.oldPath');
});

test('a batch is non-empty with seqs in order (equal ones allowed, for a reconciliation); its job id is first-last', () => {
  const events = makeEvents(10, 5);
  assert.deepEqual(parseEvents(events), events);
  assert.equal(batchJobId(events), '10-14');
  assert.equal(batchJobId(makeEvents(3, 1)), '3-3');
  assert.throws(() => parseEvents([]), BadEventError);
  assert.throws(() => batchJobId([]), BadEventError);
  assert.throws(() => parseEvents('events'), BadEventError);
  const [a, b] = makeEvents(1, 2) as [ChangeEvent, ChangeEvent];
  assert.throws(() => parseEvents([b, a]), /events\[1\]\.seq: seqs must not decrease/);
  assert.deepEqual(parseEvents([a, { ...a, path: 'other' }]).map((e) => e.seq), [1, 1]);
});

test('a job must carry the batch name and a batch; done entries are distinct indexes of its events', () => {
  const events = makeEvents(1, 3);
  assert.deepEqual(parseBatchJob(BATCH_JOB_NAME, { events }), { events });
  const failures = [{ seq: 2, kind: 'modified', path: 'dir/f2', message: 'boom', code: 'ENOENT' }];
  assert.deepEqual(parseBatchJob(BATCH_JOB_NAME, { events, done: [1], failures }), { events, done: [1], failures });
  assert.throws(() => parseBatchJob('change-events/0', { events }), /job name "change-events\/0" is not/);
  assert.throws(() => parseBatchJob(BATCH_JOB_NAME, 'garbage'), /data: must be an object/);
  assert.throws(() => parseBatchJob(BATCH_JOB_NAME, { events, done: [3] }), /done\[0\]: is not the index/);
  assert.throws(() => parseBatchJob(BATCH_JOB_NAME, { events, done: [1, 1] }), /done\[1\]: .*repeats/);
  assert.throws(() => parseBatchJob(BATCH_JOB_NAME, { events, done: 'all' }), /done: must be an array/);
  assert.throws(() => parseBatchJob(BATCH_JOB_NAME, { events, failures: [{ seq: 1 }] }), /failures\[0\]\.kind/);
});

test('random damage to a valid job is refused with BadEventError, never anything else', () => {
  const rng = new Prng(0x5eed);
  const junk: unknown[] = [null, true, 0, -1, 1e300, '', 'x', '..', [], {}, [1], { a: 1 }];
  const base = { events: makeEvents(1, 4, 'renamed').map((e) => ({ ...e, oldPath: 'before' })), done: [2] };
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const data = structuredClone(base) as Record<string, unknown>;
    // Walk to a random object in the job and replace one of its fields with junk.
    let node: Record<string, unknown> = data;
    for (let depth = rng.int(3); depth > 0; depth--) {
      const keys = Object.keys(node).filter((k) => typeof node[k] === 'object' && node[k] !== null);
      if (keys.length === 0) break;
      node = node[keys[rng.int(keys.length)] as string] as Record<string, unknown>;
    }
    const keys = Object.keys(node);
    node[keys[rng.int(keys.length)] as string] = junk[rng.int(junk.length)];
    try {
      parseBatchJob(BATCH_JOB_NAME, data);
    } catch (err) {
      assert.ok(err instanceof BadEventError, `${String(err)} for ${JSON.stringify(data)}`);
      refused += 1;
    }
  }
  assert.ok(refused > 1000, `only ${refused} of 2000 damaged jobs refused`);
});

test('failures record the event and a bounded message, and the error lists them', () => {
  const [e] = makeEvents(5, 1) as [ChangeEvent];
  const f = failureOf(e, Object.assign(new Error('x'.repeat(5000)), { code: 'EIO' }));
  assert.equal(f.seq, 5);
  assert.equal(f.code, 'EIO');
  assert.equal(f.message.length, MAX_FAILURE_MESSAGE + 1);
  assert.deepEqual(failureOf(e, 'a string'), { seq: 5, kind: 'modified', path: 'dir/f5', message: 'a string' });
  const many = makeEvents(1, 30).map((ev) => failureOf(ev, new Error('no')));
  const err = new EventsFailedError(many, 40);
  assert.equal(err.failures.length, 30);
  assert.match(err.message, /^30 of 40 events failed: #1 modified 'dir\/f1': no; /);
  assert.match(err.message, /#20 modified.*; and 10 more$/);
});

test('service names are checked', () => {
  for (const name of ['indexer', 'scanner-2', 'a.b_c']) assert.equal(checkServiceName(name), name);
  for (const name of ['', 'a:b', '-x', 'x'.repeat(65), 'a b']) assert.throws(() => checkServiceName(name), ConfigError);
});

// The figures bench:events computes from its records: percentiles, the windows it counts in, the drain rate, and
// the record file format written by RecordWriter (the peer's worker) and read by readRecords.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  RecordWriter, byOrigin, drainPerSecond, handledPerSecond, latency, onlyOrigin, percentile, readRecords, type Records,
} from '../../bench/events-records.ts';

function records(rows: Array<[time: number, start: number, origin?: number]>): Records {
  return {
    seq: Float64Array.from(rows, (_, i) => i + 1),
    time: Float64Array.from(rows, (r) => r[0]),
    start: Float64Array.from(rows, (r) => r[1]),
    origin: Uint8Array.from(rows, (r) => r[2] ?? 0),
  };
}

test('percentile is nearest-rank: p50 of 1..10 is 5, p99 is 10, p100 of one value is that value', () => {
  const xs = Array.from({ length: 10 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 0.5), 5);
  assert.equal(percentile(xs, 0.99), 10);
  assert.equal(percentile(xs, 0.1), 1);
  assert.equal(percentile([7], 1), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test('handledPerSecond counts handler starts in [from, to) only', () => {
  const r = records([[0, 999], [0, 1000], [0, 1500], [0, 1999.9], [0, 2000]]);
  assert.equal(handledPerSecond(r, 1000, 2000), 3);
});

test('latency takes the events produced in the window, whenever they were handled', () => {
  const r = records([[999, 1000], [1000, 1004], [1500, 1502], [1999, 2100], [2000, 2001]]);
  const l = latency(r, 1000, 2000);
  assert.equal(l.events, 3);
  assert.equal(l.perSecond, 3);
  assert.equal(l.p50, 4);
  assert.equal(l.p99, 101);
  assert.equal(l.max, 101);
});

test('drainPerSecond spans resume to the last handler start and leaves that last batch out', () => {
  // Resumed at 100; batches of 100 events started at 100, 110, 120: 200 events in 20 ms.
  const r = records([...Array(100).fill([0, 100]), ...Array(100).fill([0, 110]), ...Array(100).fill([0, 120]), [0, 50]]);
  const d = drainPerSecond(r, 100);
  assert.equal(d.events, 200);
  assert.equal(d.perSecond, 10_000);
});

test('RecordWriter and readRecords agree, across blocks and with a partial block at close', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-bench-records-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'r.bin');
  const w = new RecordWriter(file, 4);
  for (let i = 1; i <= 10; i++) w.add(i, i * 10 + 0.25, i * 10 + 1.5);
  w.close();
  assert.equal(w.count, 10);
  const r = readRecords(file);
  assert.deepEqual([...r.seq], Array.from({ length: 10 }, (_, i) => i + 1));
  assert.deepEqual([...r.time], Array.from({ length: 10 }, (_, i) => (i + 1) * 10 + 0.25));
  assert.deepEqual([...r.start], Array.from({ length: 10 }, (_, i) => (i + 1) * 10 + 1.5));
  assert.deepEqual([...r.origin], Array(10).fill(0));
});

test('onlyOrigin and byOrigin tell guest events from host ones', () => {
  const r = records([[1, 10, 0], [2, 20, 1], [3, 30, 0], [4, 5, 1]]);
  assert.deepEqual([...onlyOrigin(r, 'guest').time], [1, 3]);
  assert.deepEqual([...onlyOrigin(r, 'host').time], [2, 4]);
  assert.deepEqual(byOrigin(r, 10), { guest: 2, host: 1 });
});

// The change-event log: appends come back in order once synced, a torn tail is cut off at reopen, numbering goes
// on across restarts and deleted segments, and damage is a named error rather than a garbage event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, listSegments, segmentPath } from '../../../core/events/event-log.ts';
import type { NewEvent } from '../../../core/events/change-event.ts';
import { decodeRecord } from '../../../core/events/log-record.ts';

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-evlog-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function ev(i: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    guest: 'vm1', export: 'home', kind: 'created', path: `d/file-${i}`, dir: false, size: i, mtime: 1700000000000.5 + i,
    ino: 1000 + i, time: 0, origin: 'host', ...over,
  };
}

async function synced(log: EventLog, seq: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (log.position().lastSeq < seq) {
    if (Date.now() > deadline) throw new Error(`seq ${seq} not synced: at ${log.position().lastSeq}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('appended events read back in order, with every field, only once synced', async (t) => {
  const log = new EventLog(tmp(t), { syncIntervalMs: 1 });
  t.after(() => log.close());
  const seqs = [0, 1, 2].map((i) => log.append(ev(i)));
  assert.deepEqual(seqs, [1, 2, 3]);
  const renamed = log.append(ev(3, { kind: 'renamed', oldPath: 'd/old name ü', path: 'd/new', dir: true, origin: 'guest' }));
  await synced(log, renamed);
  const r = log.reader(1);
  const got = r.read(100);
  r.close();
  assert.equal(got.length, 4);
  assert.deepEqual(got.map((e) => e.seq), [1, 2, 3, 4]);
  const [first] = got;
  assert.equal(first?.path, 'd/file-0');
  assert.equal(first?.mtime, 1700000000000.5);
  assert.equal(first?.ino, 1000);
  assert.equal(first?.origin, 'host');
  assert.equal(first?.oldPath, undefined, 'only renamed events carry oldPath');
  assert.ok(Math.abs((first?.time ?? 0) - Date.now()) < 60_000, 'time is the wall clock at append');
  assert.deepEqual(
    { kind: got[3]?.kind, oldPath: got[3]?.oldPath, path: got[3]?.path, dir: got[3]?.dir, origin: got[3]?.origin },
    { kind: 'renamed', oldPath: 'd/old name ü', path: 'd/new', dir: true, origin: 'guest' },
  );
});

test('a reader resumes where it stopped and sees later appends; the synced event fires', async (t) => {
  const log = new EventLog(tmp(t), { syncIntervalMs: 1 });
  t.after(() => log.close());
  let fired = 0;
  log.on('synced', () => fired++);
  for (let i = 0; i < 10; i++) log.append(ev(i));
  await synced(log, 10);
  const r = log.reader(4);
  t.after(() => r.close());
  assert.deepEqual(r.read(3).map((e) => e.seq), [4, 5, 6]);
  assert.deepEqual(r.read(100).map((e) => e.seq), [7, 8, 9, 10]);
  assert.deepEqual(r.read(100), []);
  log.append(ev(10));
  await synced(log, 11);
  assert.deepEqual(r.read(100).map((e) => e.seq), [11]);
  assert.ok(fired >= 1, 'onSynced reached JavaScript');
});

test('segments rotate; numbering goes on across reopen and truncation; readers cross segments', async (t) => {
  const dir = tmp(t);
  let log = new EventLog(dir, { segmentBytes: 4096, syncIntervalMs: 1 });
  for (let i = 0; i < 200; i++) {
    log.append(ev(i));
    if (i % 20 === 19) await synced(log, i + 1); // rotation happens on the sync thread
  }
  await synced(log, 200);
  assert.ok(listSegments(dir).length > 3, `expected several segments, got ${listSegments(dir).length}`);
  const r = log.reader(1);
  const all = r.read(1000);
  r.close();
  assert.deepEqual(all.map((e) => e.seq), Array.from({ length: 200 }, (_, i) => i + 1));
  const removed = log.truncate(150);
  assert.ok(removed > 0);
  const segs = listSegments(dir);
  assert.ok((segs[0] ?? 0) <= 150, 'the segment holding seq 150 is kept');
  log.close();
  log = new EventLog(dir, { segmentBytes: 4096, syncIntervalMs: 1 });
  t.after(() => log.close());
  assert.equal(log.append(ev(999)), 201, 'numbering continues after reopen');
  await synced(log, 201);
  const late = log.reader(1);
  const rest = late.read(1000);
  late.close();
  assert.equal(rest[0]?.seq, segs[0], 'a reader asking for deleted events starts at the oldest kept');
  assert.equal(late.skipped, (segs[0] ?? 1) - 1);
  assert.equal(rest.at(-1)?.seq, 201);
});

test('a torn record at the end is cut off at reopen; the seq it had is given again', async (t) => {
  const dir = tmp(t);
  let log = new EventLog(dir, { syncIntervalMs: 1 });
  for (let i = 0; i < 3; i++) log.append(ev(i));
  await synced(log, 3);
  log.close();
  const seg = segmentPath(dir, 1);
  const whole = fs.readFileSync(seg);
  fs.writeFileSync(seg, whole.subarray(0, whole.length - 7)); // the last record half on disk
  log = new EventLog(dir, { syncIntervalMs: 1 });
  t.after(() => log.close());
  assert.equal(fs.statSync(seg).size < whole.length - 7, true, 'the torn record was cut off');
  assert.equal(log.append(ev(7, { path: 'after' })), 3);
  await synced(log, 3);
  const r = log.reader(1);
  const got = r.read(10);
  r.close();
  assert.deepEqual(got.map((e) => [e.seq, e.path]), [[1, 'd/file-0'], [2, 'd/file-1'], [3, 'after']]);
});

test('damage in the middle of a segment is an EventLogError naming the file and offset', async (t) => {
  const dir = tmp(t);
  const log = new EventLog(dir, { syncIntervalMs: 1 });
  t.after(() => log.close());
  for (let i = 0; i < 3; i++) log.append(ev(i));
  await synced(log, 3);
  const seg = segmentPath(dir, 1);
  const buf = fs.readFileSync(seg);
  const first = decodeRecord(buf, 0);
  assert.equal(first.kind, 'event');
  const second = first.kind === 'event' ? first.length : 0;
  const fd = fs.openSync(seg, 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, second + 70); // a byte of the second record's path
  fs.closeSync(fd);
  const r = log.reader(1);
  t.after(() => r.close());
  assert.throws(() => r.read(10), (e: Error & { code?: string; offset?: number; file?: string }) => {
    assert.equal(e.code, 'XENFS_ERR_EVENT_LOG');
    assert.equal(e.offset, second);
    assert.equal(e.file, seg);
    return true;
  });
});

test('decodeRecord never throws on arbitrary bytes', () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const buf = Buffer.alloc(Math.floor(rand() * 200));
    for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
    if (buf.length >= 4 && rand() < 0.5) buf.writeUInt32LE(Math.min(buf.length, 64 + Math.floor(rand() * 100)), 0);
    const r = decodeRecord(buf, 0);
    assert.ok(['event', 'partial', 'corrupt'].includes(r.kind));
  }
});

test('append refuses bad input with a TypeError and oversized strings with ENAMETOOLONG', (t) => {
  const log = new EventLog(tmp(t));
  t.after(() => log.close());
  assert.throws(() => log.append(ev(0, { path: 'x'.repeat(5000) })), /File name too long/);
  assert.throws(() => log.append(ev(0, { size: -1 })), TypeError);
  log.close();
  assert.throws(() => log.append(ev(0)), /shut ?down/i);
});

test('regression: a process that closes its log exits cleanly (a last notice during teardown aborted it)', (t) => {
  const dir = tmp(t);
  const mod = new URL('../../../core/events/event-log.ts', import.meta.url).href;
  const script = `import { EventLog } from ${JSON.stringify(mod)};
    const log = new EventLog(${JSON.stringify(dir)});
    log.append({ guest: 'g', export: 'e', kind: 'created', path: 'p', dir: false, size: 1, mtime: 1, ino: 1, time: 0, origin: 'host' });
    log.close();`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /terminate called/);
});

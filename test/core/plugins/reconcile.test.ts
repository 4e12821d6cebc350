// reconcile() over real directories and a real SQLite record: initial indexing, no difference once applied,
// exactly the expected events after a set of host changes, path-order edge cases, what cannot be read,
// ignore, progress and abort.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ErrnoError } from '../../../core/errors.ts';
import type { ChangeEvent, NewEvent } from '../../../core/events/change-event.ts';
import { type ReconcileOptions, type ReconcileProgress, type ReconcileResult, reconcile } from '../../../core/plugins/reconcile.ts';
import { RecordedState } from '../../../core/plugins/recorded-state.ts';

interface Fixture {
  root: string;
  state: RecordedState;
  dbFile: string;
}

function fixture(t: TestContext): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-rec-'));
  const root = path.join(dir, 'export');
  fs.mkdirSync(root);
  const dbFile = path.join(dir, 'state.db');
  const db = new Database(dbFile);
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { root, state: new RecordedState(db), dbFile };
}

/** Makes `names` under `root`: a trailing '/' makes a directory, anything else a file holding its name. */
function makeTree(root: string, names: readonly string[]): void {
  for (const n of names) {
    const abs = path.join(root, n);
    if (n.endsWith('/')) fs.mkdirSync(abs, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, n);
    }
  }
}

let seq = 0;

/** Runs a pass, applying each event as a consumer would (numbered as the log would), and returns them. */
async function pass(f: Fixture, extra: Partial<ReconcileOptions> = {}): Promise<{ events: NewEvent[]; result: ReconcileResult }> {
  const gen = reconcile({ guest: 'g', export: 'e', root: f.root, state: f.state, ...extra });
  const events: NewEvent[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done === true) return { events, result: step.value };
    events.push(step.value);
    const logged: ChangeEvent = { ...step.value, seq: ++seq };
    f.state.apply(logged);
  }
}

const show = (events: readonly NewEvent[]): string[] => events.map((e) => `${e.kind} ${e.path}`);

test('an empty record: everything is created, a directory before what is in it, with the state on disk', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['top', 'd/', 'd/f', 'd/sub/g', 'e/']);
  const { events, result } = await pass(f);
  assert.deepEqual(show(events), ['dirCreated d', 'created d/f', 'dirCreated d/sub', 'created d/sub/g', 'dirCreated e', 'created top']);
  for (const ev of events) {
    const st = fs.lstatSync(path.join(f.root, ev.path));
    assert.deepEqual([ev.dir, ev.ino, ev.mtime], [st.isDirectory(), st.ino, st.mtimeMs], ev.path);
    if (!ev.dir) assert.equal(ev.size, st.size);
    assert.equal(ev.origin, 'host');
    assert.equal(ev.guest, 'g');
    assert.equal(ev.export, 'e');
  }
  assert.deepEqual(result, { scanned: 6, emitted: 6, unreadable: 0 });
  assert.equal(f.state.count('g', 'e'), 6);
  assert.deepEqual(show((await pass(f)).events), [], 'once applied, nothing differs');
});

test('after host changes: exactly the events that bring the record in line', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['same', 'touched', 'replaced', 'gone-dir/a', 'gone-dir/b/c', 'gone-file', 'grows', 'kept/x']);
  await pass(f);
  const touched = path.join(f.root, 'touched');
  const st = fs.statSync(touched);
  fs.writeFileSync(touched, 'TOUCHED'); // same size as 'touched'
  fs.utimesSync(touched, st.atime, new Date(st.mtimeMs + 5000));
  const oldIno = fs.statSync(path.join(f.root, 'replaced')).ino;
  fs.writeFileSync(path.join(f.root, 'replaced.tmp'), 'replaced'); // same size and content, new inode
  fs.renameSync(path.join(f.root, 'replaced.tmp'), path.join(f.root, 'replaced'));
  fs.utimesSync(path.join(f.root, 'replaced'), st.atime, fs.statSync(path.join(f.root, 'same')).mtime);
  fs.rmSync(path.join(f.root, 'gone-dir'), { recursive: true });
  fs.unlinkSync(path.join(f.root, 'gone-file'));
  fs.appendFileSync(path.join(f.root, 'grows'), '+');
  makeTree(f.root, ['new-dir/n', 'kept/y']);
  const { events } = await pass(f);
  assert.deepEqual(show(events), [
    'dirDeleted gone-dir', 'deleted gone-file', 'modified grows', 'created kept/y', 'dirCreated new-dir', 'created new-dir/n',
    'modified replaced', 'modified touched',
  ]);
  const replaced = events.find((e) => e.path === 'replaced');
  assert.notEqual(replaced?.ino, oldIno, 'the new inode travels in the event');
  const gone = events.find((e) => e.path === 'gone-file');
  assert.equal(gone?.size, 'gone-file'.length, 'a deletion carries the recorded state');
  assert.deepEqual(show((await pass(f)).events), []);
});

test('names that change between file and directory', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['was-file', 'was-dir/a', 'was-dir/b/c']);
  await pass(f);
  fs.unlinkSync(path.join(f.root, 'was-file'));
  fs.rmSync(path.join(f.root, 'was-dir'), { recursive: true });
  makeTree(f.root, ['was-file/inside', 'was-dir']);
  const { events } = await pass(f);
  assert.deepEqual(show(events), ['dirDeleted was-dir', 'created was-dir', 'deleted was-file', 'dirCreated was-file', 'created was-file/inside']);
  assert.deepEqual(show((await pass(f)).events), []);
});

test('path order edge cases: a/b, a-b, a.b, a/b/c and non-ASCII names merge without false differences', async (t) => {
  const f = fixture(t);
  const names = ['a/b/c', 'a-b', 'a.b', 'a0', 'a/b-c', 'a/bc', 'a%/x', 'a_', 'é/x', 'e\u0301', '日本/語', '\uE000', '😀/😀', 'z'];
  makeTree(f.root, names);
  const first = await pass(f);
  assert.deepEqual(show(first.events), [
    'dirCreated a', 'created a-b', 'created a.b', 'dirCreated a/b', 'created a/b-c', 'created a/b/c', 'created a/bc',
    'created a0', 'dirCreated a%', 'created a%/x', 'created a_', 'created e\u0301', 'created z', 'dirCreated é',
    'created é/x', 'dirCreated 日本', 'created 日本/語', 'created \uE000', 'dirCreated 😀', 'created 😀/😀',
  ].sort((x, y) => Buffer.compare(Buffer.from(x.split(' ')[1]!), Buffer.from(y.split(' ')[1]!))));
  assert.deepEqual(show((await pass(f)).events), [], 'a merge in the wrong order would report these deleted and created');
  fs.rmSync(path.join(f.root, 'a', 'b'), { recursive: true });
  fs.unlinkSync(path.join(f.root, 'a-b'));
  fs.rmSync(path.join(f.root, '😀'), { recursive: true });
  makeTree(f.root, ['a/b.c']);
  assert.deepEqual(show((await pass(f)).events), ['deleted a-b', 'dirDeleted a/b', 'created a/b.c', 'dirDeleted 😀']);
});

test('symlinks are recorded as themselves; nothing behind them is walked', async (t) => {
  const f = fixture(t);
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-rec-out-'));
  t.after(() => fs.rmSync(outside, { recursive: true, force: true }));
  makeTree(outside, ['secret']);
  fs.symlinkSync(outside, path.join(f.root, 'ln'));
  const { events } = await pass(f);
  assert.deepEqual(show(events), ['created ln']);
  assert.equal(events[0]?.dir, false);
});

test('ignored names are neither created nor deleted, with everything below them', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['.xenfs/state', '.xenfs/sub/deep', 'data']);
  const ignore = (p: string): boolean => p === '.xenfs';
  assert.deepEqual(show((await pass(f, { ignore })).events), ['created data']);
  // Rows under an ignored name (recorded before it was ignored) are not reported deleted either.
  await pass(f);
  fs.rmSync(path.join(f.root, '.xenfs'), { recursive: true });
  assert.deepEqual(show((await pass(f, { ignore })).events), []);
});

test('progress: throttled while running, once more at the end with the total; abort stops the pass', async (t) => {
  const f = fixture(t);
  const names = Array.from({ length: 1500 }, (_, i) => `d${i % 30}/f${i}`);
  makeTree(f.root, names);
  const reports: Array<ReconcileProgress & { at: number }> = [];
  const start = performance.now();
  const { result } = await pass(f, { onProgress: (p) => reports.push({ ...p, at: performance.now() }) });
  const elapsed = performance.now() - start;
  assert.equal(result.scanned, 1530);
  const last = reports.at(-1);
  assert.deepEqual({ ...last, at: 0 }, { scanned: 1530, total: 1530, emitted: 1530, at: 0 });
  assert.ok(reports.length <= Math.floor(elapsed / 100) + 1, `${reports.length} reports in ${elapsed.toFixed(0)} ms`);
  for (let i = 1; i + 1 < reports.length; i++) assert.ok(reports[i]!.at - reports[i - 1]!.at >= 99, 'at most every 100 ms');

  fs.rmSync(path.join(f.root, 'd1'), { recursive: true });
  const ctl = new AbortController();
  const seen: NewEvent[] = [];
  await assert.rejects(async () => {
    for await (const ev of reconcile({ guest: 'g', export: 'e', root: f.root, state: f.state, signal: ctl.signal })) {
      seen.push(ev);
      ctl.abort(new Error('operator stopped it'));
    }
  }, /operator stopped it/);
  assert.equal(seen.length, 1);
});

test('a missing root throws instead of reporting the whole export deleted', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['a']);
  await pass(f);
  fs.rmSync(f.root, { recursive: true });
  await assert.rejects(pass(f), (err: unknown) => err instanceof ErrnoError && err.errnoName === 'ENOENT');
  fs.writeFileSync(f.root, 'not a directory');
  await assert.rejects(pass(f), (err: unknown) => err instanceof ErrnoError && err.errnoName === 'ENOTDIR');
  assert.equal(f.state.count('g', 'e'), 1);
});

const RECONCILE = new URL('../../../core/plugins/reconcile.ts', import.meta.url).href;
const RECORDED = new URL('../../../core/plugins/recorded-state.ts', import.meta.url).href;

test('a directory that cannot be read keeps its recorded rows; nothing under it is reported deleted', async (t) => {
  const f = fixture(t);
  makeTree(f.root, ['locked/a', 'locked/b', 'open/c']);
  await pass(f);
  makeTree(f.root, ['open/d']);
  // Root reads everything; an unprivileged user without capabilities cannot.
  fs.chmodSync(path.dirname(f.root), 0o755);
  fs.chmodSync(f.root, 0o755);
  fs.chmodSync(path.join(f.root, 'open'), 0o755);
  fs.chmodSync(path.join(f.root, 'locked'), 0o700);
  fs.chmodSync(f.dbFile, 0o666);
  fs.chmodSync(path.dirname(f.dbFile), 0o777);
  const script = `import Database from 'better-sqlite3';
    import { reconcile } from ${JSON.stringify(RECONCILE)};
    import { RecordedState } from ${JSON.stringify(RECORDED)};
    const state = new RecordedState(new Database(${JSON.stringify(f.dbFile)}, { readonly: true }));
    const gen = reconcile({ guest: 'g', export: 'e', root: ${JSON.stringify(f.root)}, state });
    const events = [];
    for (;;) { const s = await gen.next(); if (s.done) { console.log(JSON.stringify({ events, result: s.value })); break; } events.push(s.value.kind + ' ' + s.value.path); }`;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
    process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && /setpriv|EACCES.*(tsx|node_modules)/.test(r.stderr) && !r.stdout) {
    t.skip(`cannot run as an unprivileged user here: ${r.stderr.trim().split('\n')[0]}`);
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { events: string[]; result: ReconcileResult };
  assert.deepEqual(out.events, ['created open/d']);
  assert.equal(out.result.unreadable, 1);
});

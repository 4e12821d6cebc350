// HostWatcher on real temp directories with real chokidar: every kind of host change, bursts, shared roots,
// echo suppression of the server's own changes, symlinks, ignore, close, and inotify running out of watches.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChangeEvent, NewEvent } from '../../../core/events/change-event.ts';
import { HostWatcher } from '../../../core/events/host-watcher.ts';
import type { HostWatchError, HostWatcherOptions, WatchedExport } from '../../../core/events/host-watcher.ts';
import { waitFor } from '../../helpers/fixtures.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tempDir(t: TestContext, prefix = 'xenfs-hw-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Harness {
  root: string;
  watcher: HostWatcher;
  events: NewEvent[];
  errors: HostWatchError[];
  /** Resolves once an event for `p` of `kind` (for guest g1) has come out; returns it. */
  until(kind: string, p: string, ms?: number): Promise<NewEvent>;
  /** Makes a change after everything before it and waits for its event: nothing earlier can still be pending. */
  barrier(): Promise<void>;
  /** The events so far, as 'kind path' for guest g1, without barrier files. */
  seen(): string[];
}

async function watchRoot(t: TestContext, opts: Partial<HostWatcherOptions> & { root?: string; exports?: WatchedExport[] } = {}): Promise<Harness> {
  const root = opts.root ?? tempDir(t);
  const watcher = new HostWatcher({ exports: opts.exports ?? [{ guest: 'g1', export: 'e', root }], ...opts });
  t.after(() => watcher.close());
  const events: NewEvent[] = [];
  const errors: HostWatchError[] = [];
  watcher.on('event', (ev) => events.push(ev));
  watcher.on('watchError', (err) => errors.push(err));
  await watcher.ready;
  let barriers = 0;
  const until = async (kind: string, p: string, ms = 5000): Promise<NewEvent> => {
    let found: NewEvent | undefined;
    await waitFor(() => (found = events.find((e) => e.guest === 'g1' && e.kind === kind && e.path === p)) !== undefined, ms, `${kind} ${p}`);
    return found!;
  };
  return {
    root, watcher, events, errors, until,
    async barrier() {
      const name = `.barrier-${++barriers}`;
      fs.writeFileSync(path.join(root, name), 'b');
      await until('created', name);
    },
    seen: () => events.filter((e) => e.guest === 'g1' && !e.path.startsWith('.barrier-')).map((e) => `${e.kind} ${e.path}`),
  };
}

function assertMatchesDisk(ev: NewEvent, abs: string): void {
  const st = fs.lstatSync(abs);
  assert.equal(ev.size, st.size, `${ev.path} size`);
  assert.equal(ev.mtime, st.mtimeMs, `${ev.path} mtime`);
  assert.equal(ev.ino, st.ino, `${ev.path} ino`);
  assert.equal(ev.dir, st.isDirectory(), `${ev.path} dir`);
}

// What the server would announce for a change it made itself: the state on disk right now.
function serverEvent(root: string, kind: ChangeEvent['kind'], rel: string, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  const st = kind === 'deleted' || kind === 'dirDeleted' ? undefined : fs.lstatSync(path.join(root, rel));
  return {
    seq: 1, guest: 'g1', export: 'e', kind, path: rel, dir: st?.isDirectory() ?? kind === 'dirDeleted',
    size: st?.size ?? 0, mtime: st?.mtimeMs ?? 0, ino: st?.ino ?? 0, time: Date.now(), origin: 'guest', ...extra,
  };
}

test('each kind of host change becomes its event, with the fields of the state on disk', async (t) => {
  const h = await watchRoot(t);
  const file = path.join(h.root, 'a.txt');
  const before = Date.now();
  fs.writeFileSync(file, 'hello');
  const created = await h.until('created', 'a.txt');
  assertMatchesDisk(created, file);
  assert.equal(created.origin, 'host');
  assert.equal(created.export, 'e');
  assert.ok(created.time >= before && created.time <= Date.now(), 'time is when it was recorded');

  fs.appendFileSync(file, ' world');
  assertMatchesDisk(await h.until('modified', 'a.txt'), file);

  fs.chmodSync(file, 0o600);
  assertMatchesDisk(await h.until('metadata', 'a.txt'), file);

  fs.mkdirSync(path.join(h.root, 'd'));
  fs.writeFileSync(path.join(h.root, 'd', 'f'), 'x');
  assertMatchesDisk(await h.until('dirCreated', 'd'), path.join(h.root, 'd'));
  await h.until('created', 'd/f');

  const size = fs.statSync(file).size;
  fs.unlinkSync(file);
  const deleted = await h.until('deleted', 'a.txt');
  assert.equal(deleted.size, size, 'a deletion carries the size before it');
  assert.equal(deleted.dir, false);

  fs.rmSync(path.join(h.root, 'd'), { recursive: true });
  const dirDeleted = await h.until('dirDeleted', 'd');
  assert.equal(dirDeleted.dir, true);
  await h.barrier();
  assert.deepEqual(h.seen(), [
    'created a.txt', 'modified a.txt', 'metadata a.txt', 'dirCreated d', 'created d/f', 'deleted a.txt', 'dirDeleted d',
  ], 'one dirDeleted covers the files removed with the directory; no other events');
});

test('a burst of appends is one modified, soon after the last write; a file made and removed at once is nothing', async (t) => {
  const h = await watchRoot(t);
  const file = path.join(h.root, 'log');
  fs.writeFileSync(file, '');
  await h.until('created', 'log');
  const fd = fs.openSync(file, 'a');
  let lastWrite = 0;
  for (let i = 0; i < 15; i++) {
    fs.writeSync(fd, 'line\n');
    lastWrite = performance.now();
    await sleep(10);
  }
  fs.closeSync(fd);
  const ev = await h.until('modified', 'log');
  const latency = performance.now() - lastWrite;
  assert.ok(latency < 1000, `reported ${latency.toFixed(0)} ms after the last write`);
  assert.equal(ev.size, 15 * 5);
  fs.writeFileSync(path.join(h.root, 'tmp'), 'x');
  fs.unlinkSync(path.join(h.root, 'tmp'));
  await h.barrier();
  assert.deepEqual(h.seen(), ['created log', 'modified log']);
});

test('a name that never goes quiet is still reported after maxHoldMs', async (t) => {
  const h = await watchRoot(t, { maxHoldMs: 300 });
  const file = path.join(h.root, 'busy');
  const fd = fs.openSync(file, 'a');
  t.after(() => fs.closeSync(fd));
  const start = performance.now();
  let reportedWhileBusy = false;
  while (performance.now() - start < 1500 && !reportedWhileBusy) {
    fs.writeSync(fd, 'x');
    await sleep(20);
    reportedWhileBusy = h.events.some((e) => e.path === 'busy');
  }
  assert.ok(reportedWhileBusy, 'a file written every 20 ms is reported before its writer stops');
});

test('exports sharing a root (also through a symlink to it) get one event each from one watch', async (t) => {
  const root = tempDir(t);
  const link = path.join(tempDir(t), 'link-to-root');
  fs.symlinkSync(root, link);
  const h = await watchRoot(t, {
    root,
    exports: [
      { guest: 'g1', export: 'e', root },
      { guest: 'g2', export: 'shared', root: link },
      { guest: 'g1', export: 'e', root }, // named twice: still one event
    ],
  });
  fs.writeFileSync(path.join(root, 'f'), 'x');
  await h.until('created', 'f');
  await h.barrier();
  const forF = h.events.filter((e) => e.path === 'f').map((e) => `${e.guest}/${e.export}`).sort();
  assert.deepEqual(forF, ['g1/e', 'g2/shared']);
});

test('the server\'s own changes are not reported again; a later host change to the same file is', async (t) => {
  const h = await watchRoot(t);
  const file = path.join(h.root, 'g.txt');
  // As the server does: change the disk, then announce it (before the watcher has settled).
  fs.writeFileSync(file, 'from the guest');
  h.watcher.noteServerEvent(serverEvent(h.root, 'created', 'g.txt'));
  // The server's event may also arrive a little after inotify saw the change, within the settle time.
  fs.appendFileSync(file, '!');
  await sleep(30);
  h.watcher.noteServerEvent(serverEvent(h.root, 'modified', 'g.txt'));
  fs.mkdirSync(path.join(h.root, 'gd'));
  fs.writeFileSync(path.join(h.root, 'gd', 'inner'), 'x');
  h.watcher.noteServerEvent(serverEvent(h.root, 'dirCreated', 'gd'));
  h.watcher.noteServerEvent(serverEvent(h.root, 'created', 'gd/inner'));
  await h.barrier();
  assert.deepEqual(h.seen(), [], 'echoes of server events');

  fs.appendFileSync(file, ' and from the host');
  assertMatchesDisk(await h.until('modified', 'g.txt'), file);
  fs.chmodSync(file, 0o640);
  await h.until('metadata', 'g.txt');

  // A renamed directory's contents move unannounced; their unlink/add pairs on disk are echoes too.
  fs.renameSync(path.join(h.root, 'gd'), path.join(h.root, 'gd2'));
  h.watcher.noteServerEvent(serverEvent(h.root, 'renamed', 'gd2', { oldPath: 'gd' }));
  fs.unlinkSync(file);
  h.watcher.noteServerEvent(serverEvent(h.root, 'deleted', 'g.txt'));
  await h.barrier();
  assert.deepEqual(h.seen(), ['modified g.txt', 'metadata g.txt']);

  // A host change inside the renamed directory, after the rename, is not its echo.
  fs.writeFileSync(path.join(h.root, 'gd2', 'new'), 'host');
  await h.until('created', 'gd2/new');
});

test('a file a guest keeps writing through the server is held past maxHoldMs, not reported as a host change', async (t) => {
  const h = await watchRoot(t, { maxHoldMs: 300 });
  const file = path.join(h.root, 'guest-log');
  fs.writeFileSync(file, '');
  h.watcher.noteServerEvent(serverEvent(h.root, 'created', 'guest-log'));
  const fd = fs.openSync(file, 'a');
  t.after(() => fs.closeSync(fd));
  // As a guest appending and closing: the server's note always describes the file as it was a write ago.
  const start = performance.now();
  while (performance.now() - start < 1500) {
    h.watcher.noteServerEvent(serverEvent(h.root, 'modified', 'guest-log'));
    fs.writeSync(fd, 'x');
    await sleep(20);
  }
  h.watcher.noteServerEvent(serverEvent(h.root, 'modified', 'guest-log'));
  await h.barrier();
  assert.deepEqual(h.seen(), [], 'five times maxHoldMs of guest writes, no host event');
});

test('a server event no longer suppresses a change that settles after its window', async (t) => {
  // The window is shorter than the settle time: the note has expired by the time the change is judged.
  const h = await watchRoot(t, { echoWindowMs: 20, settleMs: 100 });
  const file = path.join(h.root, 'late');
  fs.writeFileSync(file, 'abc');
  h.watcher.noteServerEvent(serverEvent(h.root, 'created', 'late'));
  assertMatchesDisk(await h.until('created', 'late'), file);
});

test('symlinks are reported as themselves and never followed out of the root', async (t) => {
  const outside = tempDir(t, 'xenfs-hw-outside-');
  fs.writeFileSync(path.join(outside, 'secret'), 's');
  const h = await watchRoot(t);
  fs.symlinkSync(outside, path.join(h.root, 'ln'));
  const ev = await h.until('created', 'ln');
  assertMatchesDisk(ev, path.join(h.root, 'ln'));
  assert.equal(ev.dir, false, 'a link to a directory is not a directory');
  fs.appendFileSync(path.join(outside, 'secret'), 'more');
  fs.writeFileSync(path.join(outside, 'new'), 'n');
  await h.barrier();
  assert.deepEqual(h.seen(), ['created ln']);
  assert.ok(h.events.every((e) => !e.path.startsWith('/') && !e.path.split('/').includes('..')));
});

test('ignored names are left alone', async (t) => {
  const h = await watchRoot(t, { ignore: (p) => p === '.xenfs' || p.startsWith('.xenfs/') });
  fs.mkdirSync(path.join(h.root, '.xenfs'));
  fs.writeFileSync(path.join(h.root, '.xenfs', 'state'), 's');
  fs.writeFileSync(path.join(h.root, 'kept'), 'k');
  await h.until('created', 'kept');
  await h.barrier();
  assert.deepEqual(h.seen(), ['created kept']);
});

test('close() stops events, may be repeated, and resolves ready', async (t) => {
  const root = tempDir(t);
  const h = await watchRoot(t, { root });
  fs.writeFileSync(path.join(root, 'before'), 'x');
  // Closed while the change is still settling: it is dropped, and nothing comes after.
  await sleep(20);
  await Promise.all([h.watcher.close(), h.watcher.close()]);
  fs.writeFileSync(path.join(root, 'after'), 'x');
  // A second watcher on the same root is the witness that the change was observable.
  const witness = await watchRoot(t, { root });
  fs.appendFileSync(path.join(root, 'after'), 'y');
  await witness.until('modified', 'after');
  await sleep(150);
  assert.deepEqual(h.events, []);

  const early = new HostWatcher({ exports: [{ guest: 'g', export: 'e', root }] });
  await early.close();
  await early.ready;
});

test('a root that does not exist is a watchError, not a throw', async (t) => {
  const missing = path.join(tempDir(t), 'nope');
  const errors: HostWatchError[] = [];
  const w = new HostWatcher({ exports: [{ guest: 'g', export: 'e', root: missing }] });
  t.after(() => w.close());
  w.on('watchError', (e) => errors.push(e));
  await w.ready;
  await waitFor(() => errors.length === 1, 1000, 'watchError');
  assert.equal(errors[0]?.error.code, 'XENFS_ERR_ERRNO');
  assert.equal(errors[0]?.root, missing);
});

const HOST_WATCHER = new URL('../../../core/events/host-watcher.ts', import.meta.url).href;

test('when inotify runs out of watches: a LimitError per directory, and the rest is still watched', (t) => {
  const root = tempDir(t);
  for (let i = 0; i < 20; i++) fs.mkdirSync(path.join(root, `d${String(i).padStart(2, '0')}`));
  const script = `import fs from 'node:fs';
    import { HostWatcher } from ${JSON.stringify(HOST_WATCHER)};
    const root = ${JSON.stringify(root)};
    const w = new HostWatcher({ exports: [{ guest: 'g', export: 'e', root }] });
    const out = { errors: [], events: [] };
    w.on('watchError', (e) => out.errors.push({ path: e.path, code: e.error.code, limit: e.error.limit }));
    w.on('event', (ev) => out.events.push(ev.kind + ' ' + ev.path));
    await w.ready;
    fs.writeFileSync(root + '/top', 'x');
    const deadline = Date.now() + 5000;
    while (!out.events.includes('created top') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await w.close();
    console.log(JSON.stringify(out));`;
  // inotify's watch limit is per user namespace: lower it for a child alone, not for the host.
  const r = spawnSync('unshare', ['--user', '--map-root-user', 'sh', '-c',
    'echo 8 > /proc/sys/user/max_inotify_watches && exec "$0" --import tsx --input-type=module -e "$1"',
    process.execPath, script], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && /unshare|Operation not permitted|Permission denied/.test(r.stderr) && !r.stdout) {
    t.skip(`no user namespace with its own inotify limit here: ${r.stderr.trim()}`);
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
    errors: Array<{ path: string; code: string; limit: string }>; events: string[];
  };
  assert.ok(out.errors.length > 0, 'some directories could not be watched');
  for (const e of out.errors) {
    assert.equal(e.code, 'XENFS_ERR_LIMIT');
    assert.equal(e.limit, 'fs.inotify.max_user_watches');
    // chokidar 5 also watches each new file on its own, so `top` may be refused a watch too.
    assert.match(e.path, /^(d\d\d|top)$/, 'paths relative to the root');
  }
  assert.deepEqual(out.events, ['created top'], 'the root itself is still watched');
});

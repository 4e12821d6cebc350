// Every mutation a guest makes through dom0 becomes one change event in the log, with writes coalesced into
// one `modified` per close or fsync (docs/events.md). Driven through the client library, so each call is one
// request the test can account for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsServer } from '../../../core/server/server.ts';
import { parseConfig } from '../../../core/config/config.ts';
import { Guest } from '../../../core/frontend/guest.ts';
import { EventLog } from '../../../core/events/event-log.ts';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import { silentLogger } from '../../../core/util/log.ts';

interface Rig {
  dir: string;
  server: XenfsServer;
  log: EventLog;
  guest: Guest;
  /** The events synced since the last call. */
  take(): Promise<ChangeEvent[]>;
}

async function rig(t: { after: (fn: () => Promise<void> | void) => void }): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-changes-'));
  fs.mkdirSync(path.join(dir, 'home'));
  fs.mkdirSync(path.join(dir, 'shared'));
  fs.writeFileSync(path.join(dir, 'shared', 'readme'), 'shared');
  const log = new EventLog(path.join(dir, 'state', 'events'), { syncIntervalMs: 1 });
  const server = new XenfsServer(parseConfig({
    stateDir: 'state',
    exports: { shared: { path: 'shared' } },
    guests: [{ name: 'vm1', secret: 's', exports: [{ name: 'home', path: 'home' }, 'shared'] }],
  }, path.join(dir, 'c.json')), silentLogger, { eventLog: log.file });
  server.start();
  const guest = await Guest.connect({ controlPath: server.controlPath, domain: 'vm1', secret: 's' });
  const reader = log.reader(1);
  t.after(async () => {
    reader.close();
    await guest.close();
    await server.stop();
    log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const r: Rig = {
    dir, server, log, guest,
    async take() {
      // Replies go out after the append; the sync thread makes events readable within milliseconds. Wait until
      // the synced position stops moving.
      let last = -1;
      for (const deadline = Date.now() + 2000; Date.now() < deadline;) {
        const p = r.log.position().lastSeq;
        if (p === last) break;
        last = p;
        await new Promise((res) => setTimeout(res, 20));
      }
      return reader.read(10_000);
    },
  };
  return r;
}

const brief = (evs: ChangeEvent[]) => evs.map((e) => [e.kind, e.path, ...(e.oldPath !== undefined ? [e.oldPath] : [])]);

test('namespace changes: one event each, with paths relative to the export and the guest and export named', async (t) => {
  const r = await rig(t);
  const f = r.guest.fs('home');
  await f.mkdir('docs');
  await f.mkdir('docs/sub');
  await f.symlink('target', 'docs/link');
  await f.writeFile('docs/a.txt', 'hello');
  await f.link('docs/a.txt', 'docs/hard');
  await f.rename('docs/a.txt', 'docs/sub/b.txt');
  await f.rename('docs/sub', 'moved');
  await f.unlink('docs/hard');
  await f.unlink('docs/link');
  await f.unlink('moved/b.txt');
  await f.rmdir('moved');
  const evs = await r.take();
  assert.deepEqual(brief(evs), [
    ['dirCreated', 'docs'],
    ['dirCreated', 'docs/sub'],
    ['created', 'docs/link'],
    ['created', 'docs/a.txt'],
    ['modified', 'docs/a.txt'],
    ['created', 'docs/hard'],
    ['renamed', 'docs/sub/b.txt', 'docs/a.txt'],
    ['renamed', 'moved', 'docs/sub'],
    ['deleted', 'docs/hard'],
    ['deleted', 'docs/link'],
    ['deleted', 'moved/b.txt'],
    ['dirDeleted', 'moved'],
  ]);
  for (const e of evs) {
    assert.equal(e.guest, 'vm1');
    assert.equal(e.export, 'home');
    assert.equal(e.origin, 'guest');
  }
  const modified = evs[4];
  const st = fs.statSync(path.join(r.dir, 'home', 'moved'), { throwIfNoEntry: false });
  assert.equal(st, undefined);
  assert.equal(modified?.size, 5);
  assert.equal(evs[7]?.dir, true, 'a renamed directory says so');
  assert.equal(evs[6]?.dir, false);
  assert.equal(evs[10]?.size, 5, 'a deletion carries what the file had');
  assert.ok(evs.every((e, i) => i === 0 || e.seq === (evs[i - 1]?.seq ?? 0) + 1), 'seqs are consecutive');
});

test('writes coalesce: one modified per close, another per fsync after writing, none for a read-only open', async (t) => {
  const r = await rig(t);
  const f = r.guest.fs('home');
  await f.writeFile('log.txt', '');
  await r.take();
  const h = await f.open('log.txt', 'r+');
  for (let i = 0; i < 50; i++) await h.write(Buffer.from(`line ${i}\n`), 0, 7, i * 7);
  await h.sync();
  await h.write(Buffer.from('tail\n'), 0, 5, 350);
  await h.close();
  const ro = await f.open('log.txt', 'r');
  await ro.read(Buffer.alloc(10), 0, 10, 0);
  await ro.close();
  const rw = await f.open('log.txt', 'r+');
  await rw.close(); // opened for writing, nothing written: no event
  const evs = await r.take();
  assert.deepEqual(brief(evs), [['modified', 'log.txt'], ['modified', 'log.txt']]);
  assert.equal(evs[0]?.size, 350);
  assert.equal(evs[1]?.size, 355);
  const st = fs.statSync(path.join(r.dir, 'home', 'log.txt'));
  assert.equal(evs[1]?.ino, st.ino);
  assert.equal(evs[1]?.mtime, st.mtimeMs);
});

test('metadata: chmod, utimes, xattrs; truncate is a modification; a failed call makes no event', async (t) => {
  const r = await rig(t);
  const f = r.guest.fs('home');
  await f.writeFile('m', 'abcdef');
  await r.take();
  await f.chmod('m', 0o600);
  await f.utimes('m', new Date(1_000_000), new Date(2_000_000));
  await f.setxattr('m', 'user.tag', 'x');
  await f.removexattr('m', 'user.tag');
  await f.truncate('m', 2);
  await assert.rejects(f.unlink('missing'));
  await assert.rejects(f.mkdir('m'));
  const evs = await r.take();
  assert.deepEqual(brief(evs), [['metadata', 'm'], ['metadata', 'm'], ['metadata', 'm'], ['metadata', 'm'], ['modified', 'm']]);
  assert.equal(evs[1]?.mtime, 2_000_000);
  assert.equal(evs[4]?.size, 2);
});

test('rename with exchange reports both paths replaced; rename over a file is one renamed', async (t) => {
  const r = await rig(t);
  const f = r.guest.fs('home');
  await f.writeFile('x', 'xx');
  await f.mkdir('y');
  await f.writeFile('z', 'zzz');
  await r.take();
  await f.rename('x', 'y', { exchange: true });
  await f.rename('z', 'y'); // y holds the file x was
  const evs = await r.take();
  assert.deepEqual(brief(evs), [
    ['deleted', 'x'], ['dirCreated', 'x'], ['dirDeleted', 'y'], ['created', 'y'], ['renamed', 'y', 'z'],
  ]);
  assert.equal(evs[4]?.size, 3);
});

test('a read-only shared export makes no events; its reads and a refused write leave the log alone', async (t) => {
  const r = await rig(t);
  const f = r.guest.fs('shared');
  assert.equal(await f.readFile('readme', 'utf8'), 'shared');
  await assert.rejects(f.writeFile('new', 'x'), { errnoName: 'EROFS' });
  assert.deepEqual(await r.take(), []);
});

for (const frontend of ['native', 'fuse-native'] as const) {
  test(`through a ${frontend} mount: many write(2)s and a close make one modified (passthrough writes never reach dom0)`, async (t) => {
    const r = await rig(t);
    const { GuestMount } = await import('../../helpers/fuse.ts');
    // The front end runs as a child: this process serves its ring and must never call into its own mount.
    const m = await GuestMount.start({ dom0: r.server, domain: 'vm1', secret: 's', frontend, exportName: 'home' });
    t.after(() => m.cleanup());
    await r.take();
    const file = path.join(m.dir, 'stream.bin');
    const fd = fs.openSync(file, 'w');
    for (let i = 0; i < 64; i++) fs.writeSync(fd, Buffer.alloc(4096, i));
    fs.closeSync(fd);
    fs.appendFileSync(file, 'more');
    const evs = await r.take();
    assert.deepEqual(brief(evs), [['created', 'stream.bin'], ['modified', 'stream.bin'], ['modified', 'stream.bin']]);
    assert.equal(evs[1]?.size, 64 * 4096);
    assert.equal(evs[2]?.size, 64 * 4096 + 4);
    if (frontend === 'native') assert.equal(m.ready.passthrough, true);
  });
}

// What only the native front end does: file data through kernel passthrough (never across the ring once a file is
// open), shared mappings coherent across guests, locks enforced across guests by dom0's lock table, open files
// that outlive a dom0 restart, and the fallback to fuse-native when the kernel offers no passthrough. The
// behaviour both front ends share is in fuse-mount.test.ts and the POSIX suite.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../../core/config/config.ts';
import { XenfsServer } from '../../../core/server/server.ts';
import { silentLogger } from '../../../core/util/log.ts';
import { Scope, hostPath, startDom0, uniqueName, waitFor } from '../../helpers/fixtures.ts';
import { GuestMount } from '../../helpers/fuse.ts';

const run = promisify(execFile);
const SECRET = 'native mount secret';
const LOCK_PL = new URL('../../helpers/lock.pl', import.meta.url).pathname;
const MMAP_C = new URL('../../helpers/mmap-rw.c', import.meta.url).pathname;

/** perl lock.pl: one line of outcome ("ok", "conflict w 0 10", "none", "err EAGAIN"). */
async function lock(file: string, op: string, type: string, start: number, len: number, alarmS = 0): Promise<string> {
  const r = await run('perl', [LOCK_PL, op, file, type, String(start), String(len), '0', String(alarmS)])
    .catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return r.stdout.trim();
}

/** A lock held by a perl process until it is killed; resolves once it holds it. */
async function holdLock(scope: Scope, file: string, op: string, type: string, start: number, len: number) {
  const child = spawn('perl', [LOCK_PL, op, file, type, String(start), String(len), '600000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  scope.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  assert.equal(line, 'ok', `taking ${type} ${op} on ${file}`);
  return { release: async () => { child.kill('SIGKILL'); await exited; } };
}

describe('the native front end, two guests on one export, dom0 in this process', { timeout: 120_000 }, () => {
  const scope = new Scope();
  let scratch = '';
  let server: XenfsServer;
  let a: GuestMount;
  let b: GuestMount;
  const domA = uniqueName('nat-a');
  const domB = uniqueName('nat-b');
  const domC = uniqueName('nat-c');
  const domD = uniqueName('nat-d');
  const inA = (p: string): string => path.join(a.dir, p);
  const inB = (p: string): string => path.join(b.dir, p);
  const onHost = (p: string): string => path.join(scratch, 'shared', p);

  before(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-native-'));
    scope.defer(() => fs.rmSync(scratch, { recursive: true, force: true }));
    fs.mkdirSync(onHost(''));
    fs.mkdirSync(path.join(scratch, 'audited'));
    const shared = [{ name: 'home', path: 'shared' }];
    server = new XenfsServer(parseConfig({
      stateDir: 'state',
      guests: [
        ...[domA, domB, domC].map((name) => ({ name, secret: SECRET, exports: shared })),
        { name: domD, secret: SECRET, exports: [{ name: 'audited', path: 'audited', writes: 'dom0' }] },
      ],
    }, path.join(scratch, 'xenfs.json')), silentLogger);
    server.start();
    scope.defer(() => server.stop());
    // The front ends run as children: this process serves their rings and must never block its own mounts.
    a = await GuestMount.start({ dom0: server, domain: domA, secret: SECRET, frontend: 'native' });
    scope.defer(() => a.cleanup());
    b = await GuestMount.start({ dom0: server, domain: domB, secret: SECRET, frontend: 'native' });
    scope.defer(() => b.cleanup());
    assert.equal(a.ready.passthrough, true, 'this kernel (6.18) agrees to passthrough');
  });
  after(() => scope.close());

  it('file data never crosses the ring once a file is open: 8 MiB written in one guest and read in the other cost a handful of requests', async () => {
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    const requests = (): number => (server.guestStats(domA)?.requests ?? 0) + (server.guestStats(domB)?.requests ?? 0);
    const before = requests();
    await fsp.writeFile(inA('big'), data);
    const back = await fsp.readFile(inB('big'));
    const spent = requests() - before;
    assert.ok(back.equals(data), 'the other guest reads what was written');
    assert.ok(fs.readFileSync(onHost('big')).equals(data), 'and so does dom0');
    // Through dom0 this would be 64 WRITEs and 64 READs of 128 KiB; here only lookups, opens, flushes and releases.
    assert.ok(spent < 40, `${spent} requests reached dom0 for 16 MiB of I/O`);
    assert.ok((server.guestStats(domA)?.backingFiles ?? -1) === 0, 'registrations are dropped at release');
  });

  it('names and attributes cached in one guest follow another guest\'s changes at once (pushed invalidation)', async () => {
    // B caches that the name is missing, then its attributes, then its absence again: A's changes drop each.
    await assert.rejects(fsp.stat(inB('cached')), { code: 'ENOENT' });
    await fsp.writeFile(inA('cached'), 'one');
    assert.equal((await fsp.stat(inB('cached'))).size, 3);
    await fsp.writeFile(inA('cached'), 'three');
    assert.equal((await fsp.stat(inB('cached'))).size, 5);
    await fsp.chmod(inA('cached'), 0o600);
    assert.equal((await fsp.stat(inB('cached'))).mode & 0o777, 0o600);
    await fsp.rename(inA('cached'), inA('moved'));
    await assert.rejects(fsp.stat(inB('cached')), { code: 'ENOENT' });
    assert.equal(await fsp.readFile(inB('moved'), 'utf8'), 'three');
    await fsp.unlink(inA('moved'));
    await assert.rejects(fsp.stat(inB('moved')), { code: 'ENOENT' });
  });

  it('an export with writes: dom0 sends every write of a file the guest may write through dom0', async () => {
    const d = await GuestMount.start({ dom0: server, domain: domD, secret: SECRET, frontend: 'native' });
    try {
      const data = Buffer.alloc(1 << 20, 'w');
      const before = server.guestStats(domD)?.requests ?? 0;
      await fsp.writeFile(path.join(d.dir, 'seen'), data);
      const spent = (server.guestStats(domD)?.requests ?? 0) - before;
      // 1 MiB is eight 128 KiB WRITEs, each of which dom0 served.
      assert.ok(spent >= 8, `only ${spent} requests reached dom0`);
      assert.ok(fs.readFileSync(path.join(scratch, 'audited', 'seen')).equals(data));
      assert.ok((await fsp.readFile(path.join(d.dir, 'seen'))).equals(data));
      assert.equal(server.guestStats(domD)?.backingFiles, 0);
    } finally {
      await d.cleanup();
    }
  });

  it('a shared mapping in one guest and read() in the other see the same bytes, with no msync', async () => {
    const bin = path.join(scratch, 'mmap-rw');
    await run('cc', ['-O2', '-o', bin, MMAP_C]);
    await fsp.writeFile(inA('mapped'), Buffer.alloc(8192, '.'));
    await run(bin, ['write', inA('mapped'), '4096', 'stored through a mapping']);
    const seen = await fsp.readFile(inB('mapped'));
    assert.equal(seen.toString('utf8', 4096, 4096 + 24), 'stored through a mapping');
    await fsp.writeFile(inB('mapped'), 'written by B');
    assert.equal((await run(bin, ['read', inA('mapped'), '0', '12'])).stdout, 'written by B');
  });

  it('POSIX locks: held in one guest, refused, reported and waited for in the other', async () => {
    const s = new Scope();
    try {
      await fsp.writeFile(inA('locked'), 'x'.repeat(100));
      const held = await holdLock(s, inA('locked'), 'setlk', 'w', 0, 10);
      assert.equal(await lock(inB('locked'), 'setlk', 'w', 5, 1), 'err EAGAIN');
      assert.equal(await lock(inB('locked'), 'setlk', 'r', 0, 1), 'err EAGAIN');
      assert.equal(await lock(inB('locked'), 'setlk', 'w', 10, 5), 'ok', 'the range after the lock is free');
      assert.equal(await lock(inB('locked'), 'getlk', 'w', 0, 0), 'conflict w 0 10');
      // OFD locks meet the same table.
      assert.equal(await lock(inB('locked'), 'ofd-setlk', 'w', 9, 1), 'err EAGAIN');
      // A waiting lock is granted when the holder goes.
      const started = Date.now();
      const waiting = lock(inB('locked'), 'setlkw', 'w', 0, 10);
      await new Promise((r) => setTimeout(r, 300));
      await held.release();
      assert.equal(await waiting, 'ok');
      assert.ok(Date.now() - started >= 300, 'it waited for the holder');
    } finally {
      await s.close();
    }
  });

  it('a waiting lock is interrupted by a signal (EINTR), and flock locks are enforced across guests too', async () => {
    const s = new Scope();
    try {
      await fsp.writeFile(inA('flocked'), '');
      const posix = await holdLock(s, inA('flocked'), 'setlk', 'w', 0, 0);
      const started = Date.now();
      assert.equal(await lock(inB('flocked'), 'setlkw', 'w', 0, 0, 1), 'err EINTR');
      assert.ok(Date.now() - started < 5000, 'the interrupt ended the wait');
      await posix.release();
      // --no-fork: the lock holder is the command itself, so killing it is what lets the lock go.
      const holder = spawn('flock', ['--no-fork', '-x', inA('flocked'), 'sh', '-c', 'echo held; exec sleep 600'],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => holder.once('exit', r));
      s.defer(async () => {
        if (holder.exitCode === null) holder.kill('SIGKILL');
        await exited;
      });
      await new Promise((r) => holder.stdout.once('data', r));
      const tryB = async (): Promise<number> => (await run('flock', ['-n', '-x', inB('flocked'), 'true']).then(() => 0, (e: { code: number }) => e.code));
      assert.equal(await tryB(), 1, 'B cannot flock what A holds');
      // flock and POSIX locks are apart, as on Linux: B's POSIX lock on the file is granted.
      assert.equal(await lock(inB('flocked'), 'setlk', 'w', 0, 0), 'ok');
      holder.kill('SIGKILL');
      await exited;
      await waitFor(async () => (await tryB()) === 0, 5000, 'the flock to be released');
    } finally {
      await s.close();
    }
  });

  it('a guest that dies lets go of its locks', async () => {
    const s = new Scope();
    try {
      const c = await GuestMount.start({ dom0: server, domain: domC, secret: SECRET, frontend: 'native' });
      s.defer(() => c.cleanup());
      await fsp.writeFile(inA('orphan'), 'x');
      await holdLock(s, path.join(c.dir, 'orphan'), 'setlk', 'w', 0, 0);
      assert.equal(await lock(inB('orphan'), 'setlk', 'w', 0, 0), 'err EAGAIN');
      await c.stop('SIGKILL');
      await waitFor(async () => (await lock(inB('orphan'), 'setlk', 'w', 0, 0)) === 'ok', 10_000, 'the dead guest\'s lock to go');
    } finally {
      await s.close();
    }
  });
});

describe('the native front end across a dom0 restart, and its fallback', { timeout: 90_000 }, () => {
  it('an open file keeps working while dom0 restarts; a call made meanwhile waits and completes; new files work after', async () => {
    const s = new Scope();
    try {
      const domain = uniqueName('nat-restart');
      const dom0 = await startDom0({ guests: [{ name: domain, secret: SECRET, exports: [{ name: 'home', path: 'home' }] }] });
      s.defer(() => dom0.cleanup());
      const m = await GuestMount.start({ dom0, domain, secret: SECRET, frontend: 'native' });
      s.defer(() => m.cleanup());
      await fsp.writeFile(path.join(m.dir, 'before'), 'written before the restart');
      const open = await fsp.open(path.join(m.dir, 'before'), 'r+');
      s.defer(() => open.close().catch(() => {}));

      await dom0.stop('SIGKILL');
      // Passthrough: the kernel reads and writes the backing file itself, whatever became of dom0.
      const buf = Buffer.alloc(7);
      await open.read(buf, 0, 7, 0);
      assert.equal(buf.toString(), 'written');
      await open.write('WRITTEN', 0);
      const waiting = fsp.readFile(path.join(m.dir, 'before'), 'utf8');
      await new Promise((r) => setTimeout(r, 300));
      await dom0.spawn();
      assert.equal(await waiting, 'WRITTEN before the restart', 'the waiting call completes once dom0 is back');
      await fsp.writeFile(path.join(m.dir, 'after'), 'written after');
      assert.equal(fs.readFileSync(hostPath(dom0, 'home', 'after'), 'utf8'), 'written after');
      assert.equal(m.child.exitCode, null);
    } finally {
      await s.close();
    }
  });

  it('without passthrough, auto picks fuse-native; --frontend native serves file data through dom0', async () => {
    const s = new Scope();
    try {
      const domain = uniqueName('nat-nopt');
      const dom0 = await startDom0({ guests: [{ name: domain, secret: SECRET, exports: [{ name: 'home', path: 'home' }] }] });
      s.defer(() => dom0.cleanup());
      const auto = await GuestMount.start({ dom0, domain, secret: SECRET, passthrough: false });
      assert.deepEqual([auto.ready.frontend, auto.ready.passthrough], ['fuse-native', false]);
      await auto.cleanup();
      const forced = await GuestMount.start({ dom0, domain, secret: SECRET, passthrough: false, frontend: 'native' });
      s.defer(() => forced.cleanup());
      assert.deepEqual([forced.ready.frontend, forced.ready.passthrough], ['native', false]);
      const data = Buffer.alloc(300_000, 'z');
      await fsp.writeFile(path.join(forced.dir, 'f'), data);
      assert.ok((await fsp.readFile(path.join(forced.dir, 'f'))).equals(data));
      assert.ok(fs.readFileSync(hostPath(dom0, 'home', 'f')).equals(data));
    } finally {
      await s.close();
    }
  });
});

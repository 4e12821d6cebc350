// The guest front ends as a guest runs them (fuse-native; what the native one shares is run against both): `xenfs guest NAME --mount DIR` in a child process against a real
// dom0. Its lifecycle (ready line, clean unmount on SIGTERM and SIGINT, a dead mount cleared by the next start),
// coherency between two guests sharing one export, dom0 going away and coming back under a live mount, read-only
// exports and the cached mode. The POSIX behaviour of the mount itself is test/posix/posix.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { mountOptions } from '../../../core/frontend/fuse-mount.ts';
import type { Dom0 } from '../../helpers/dom0.ts';
import { Scope, hostPath, startDom0, uniqueName, waitFor } from '../../helpers/fixtures.ts';
import { GuestMount, type GuestMountOptions, isMounted, mountLine } from '../../helpers/fuse.ts';
import { withFile } from '../../posix/expect.ts';

const SECRET = 'fuse mount secret';
const FRONTENDS = ['fuse-native', 'native'] as const;
const MAIN = new URL('../../../core/cli/main.ts', import.meta.url).pathname;

/** A dom0 for this test, removed after it (and after every mount the test registered, which go first). */
async function dom0For(t: TestContext, config: Record<string, unknown>): Promise<{ dom0: Dom0; scope: Scope }> {
  const dom0 = await startDom0(config);
  const scope = new Scope();
  scope.defer(() => dom0.cleanup());
  t.after(() => scope.close());
  return { dom0, scope };
}

/** fuse-native unless a test names its front end: the behaviour both share runs once with each. */
async function mountGuest(scope: Scope, opts: GuestMountOptions): Promise<GuestMount> {
  const m = await GuestMount.start({ frontend: 'fuse-native', ...opts });
  scope.defer(() => m.cleanup());
  return m;
}

function guestConfig(domain: string, exports: unknown[] = [{ name: 'home', path: 'home' }]): Record<string, unknown> {
  return { name: domain, secret: SECRET, exports };
}

/** waitFor for a condition that may throw while the change is still on its way (a read racing a write). */
const eventually = (cond: () => Promise<boolean>, ms: number, what: string): Promise<void> =>
  waitFor(() => cond().catch(() => false), ms, what);

test('mountOptions: the one-copy default is direct I/O with nothing cached; auto uses the page cache', () => {
  const none = mountOptions('xenfs:vm1:home', { cache: 'none' });
  for (const o of ['fsname=xenfs:vm1:home', 'subtype=xenfs', 'use_ino', 'direct_io', 'attr_timeout=0', 'entry_timeout=0',
    'negative_timeout=0', 'big_writes', 'max_write=131072']) assert.ok(none.includes(o), o);
  const auto = mountOptions('x', { cache: 'auto' });
  assert.ok(auto.includes('auto_cache'));
  assert.ok(!auto.includes('direct_io'));
  assert.ok(!auto.some((o) => o.startsWith('attr_timeout') || o.startsWith('entry_timeout')));
  assert.ok(mountOptions('x', { allowOther: true }).includes('allow_other'));
  assert.ok(!none.includes('allow_other'));
});

test('mountOptions: a name cache sets the entry timeout in seconds, nothing else; out of range is refused', () => {
  const named = mountOptions('x', { cache: 'none', nameCacheMs: 100 });
  assert.ok(named.includes('entry_timeout=0.1'));
  assert.ok(!named.includes('entry_timeout=0'));
  for (const o of ['direct_io', 'attr_timeout=0', 'negative_timeout=0']) assert.ok(named.includes(o), o);
  assert.ok(mountOptions('x', { cache: 'auto', nameCacheMs: 2500 }).includes('entry_timeout=2.5'));
  for (const bad of [-1, 1.5, 60_001, Number.NaN]) {
    assert.throws(() => mountOptions('x', { nameCacheMs: bad }), RangeError, String(bad));
  }
});

for (const frontend of FRONTENDS) {
  test(`ready line, mounted as fuse.xenfs; SIGTERM unmounts and exits 0; the secret never shows in argv (${frontend})`, { timeout: 30_000 }, async (t) => {
    const domain = uniqueName('fm-life');
    const { dom0, scope } = await dom0For(t, { guests: [guestConfig(domain)] });
    const m = await mountGuest(scope, { frontend, dom0, domain, secret: SECRET, secretFile: true });
    assert.equal(m.ready.type, 'ready');
    assert.equal(m.ready.domain, domain);
    assert.equal(m.ready.export, 'home');
    assert.equal(m.ready.mount, m.dir);
    const line = mountLine(m.dir);
    assert.ok(line?.startsWith(`xenfs:${domain}:home ${m.dir} fuse.xenfs `), line);
    assert.ok(!fs.readFileSync(`/proc/${m.pid}/cmdline`, 'utf8').includes(SECRET), 'the secret is in argv');
    await fsp.writeFile(path.join(m.dir, 'hello'), 'through the mount');
    assert.equal(fs.readFileSync(hostPath(dom0, 'home', 'hello'), 'utf8'), 'through the mount');

    assert.deepEqual(await m.stop('SIGTERM'), { code: 0, signal: null });
    assert.equal(isMounted(m.dir), false, 'still in /proc/mounts after SIGTERM');
    assert.match(m.logs(), /guest export unmounted/);
  });
}

for (const frontend of FRONTENDS) {
  test(`a killed front end leaves a dead mount; the next start on the same directory clears it (${frontend})`, { timeout: 30_000 }, async (t) => {
    const domain = uniqueName('fm-stale');
    const { dom0, scope } = await dom0For(t, { guests: [guestConfig(domain)] });
    const first = await mountGuest(scope, { frontend, dom0, domain, secret: SECRET });
    await fsp.writeFile(path.join(first.dir, 'kept'), 'on dom0');
    await first.stop('SIGKILL');
    assert.ok(isMounted(first.dir), 'the dead mount is still attached');
    // ECONNABORTED when the connection was aborted rather than let go: the native front end's goes when dom0,
    // which holds a copy of its descriptor, sees the guest gone.
    await assert.rejects(fsp.stat(path.join(first.dir, 'kept')),
      (err: NodeJS.ErrnoException) => ['ENOTCONN', 'ECONNABORTED'].includes(err.code ?? ''));

    const second = await mountGuest(scope, { frontend, dom0, domain, secret: SECRET, dir: first.dir });
    assert.equal(await fsp.readFile(path.join(second.dir, 'kept'), 'utf8'), 'on dom0');
    assert.equal(mountLine(second.dir)?.split(' ')[1], second.dir);
    assert.deepEqual(await second.stop('SIGINT'), { code: 0, signal: null });
    assert.equal(isMounted(second.dir), false, 'still mounted after SIGINT');
  });
}

for (const frontend of FRONTENDS) {
  test(`two guests on one export: each sees the other's writes, appends, names and sizes at once (${frontend})`, { timeout: 30_000 }, async (t) => {
    const a = uniqueName('fm-a');
    const b = uniqueName('fm-b');
    const shared = [{ name: 'home', path: 'shared' }];
    const { dom0, scope } = await dom0For(t, { guests: [guestConfig(a, shared), guestConfig(b, shared)] });
    const [ma, mb] = await Promise.all([
      mountGuest(scope, { frontend, dom0, domain: a, secret: SECRET }), mountGuest(scope, { frontend, dom0, domain: b, secret: SECRET }),
    ]);
    const inA = (p: string): string => path.join(ma.dir, p);
    const inB = (p: string): string => path.join(mb.dir, p);

    // Whole-file rewrites, growing and shrinking, read back in B right after A's write returns.
    for (const text of ['first', 'a longer second version', 'short', '']) {
      await fsp.writeFile(inA('doc'), text);
      assert.equal(await fsp.readFile(inB('doc'), 'utf8'), text);
      assert.equal((await fsp.stat(inB('doc'))).size, Buffer.byteLength(text));
    }
    // A descriptor B holds open sees A's later writes: no private page cache on either side.
    await withFile(inB('doc'), 'r', async (held) => {
      for (let i = 0; i < 20; i++) {
        await fsp.writeFile(inA('doc'), `version ${i}`);
        const buf = Buffer.alloc(64);
        const { bytesRead } = await held.read(buf, 0, 64, 0);
        assert.equal(buf.toString('utf8', 0, bytesRead), `version ${i}`);
      }
    });
    // O_APPEND from both guests interleaves without either overwriting the other: dom0 appends at its true end.
    // (The file exists first: two guests creating one name at the same instant is the race fuse-ops.ts describes.)
    await fsp.writeFile(inA('log'), '');
    await withFile(inA('log'), 'a', (la) => withFile(inB('log'), 'a', async (lb) => {
      for (let i = 0; i < 10; i++) {
        await la.write(`A${i};`);
        await lb.write(`B${i};`);
      }
    }));
    const expected = Array.from({ length: 10 }, (_, i) => `A${i};B${i};`).join('');
    assert.equal(await fsp.readFile(inA('log'), 'utf8'), expected);
    assert.equal(await fsp.readFile(inB('log'), 'utf8'), expected);
    // Names: created, renamed and removed in one guest, seen in the other at once.
    await fsp.mkdir(inA('dir'));
    await fsp.writeFile(inA('dir/new'), 'x');
    assert.deepEqual(await fsp.readdir(inB('dir')), ['new']);
    await fsp.rename(inA('dir/new'), inA('dir/renamed'));
    await assert.rejects(fsp.stat(inB('dir/new')), { code: 'ENOENT' });
    assert.equal(await fsp.readFile(inB('dir/renamed'), 'utf8'), 'x');
    await fsp.unlink(inB('dir/renamed'));
    await assert.rejects(fsp.stat(inA('dir/renamed')), { code: 'ENOENT' });
    // And a change made on dom0 itself.
    fs.writeFileSync(hostPath(dom0, 'shared', 'from-dom0'), 'host side');
    assert.equal(await fsp.readFile(inA('from-dom0'), 'utf8'), 'host side');
    assert.equal(await fsp.readFile(inB('from-dom0'), 'utf8'), 'host side');
  });
}

test('dom0 restart under a live mount: calls wait for it (or fail EIO with --wait-ms 0); the same mount works after', { timeout: 45_000 }, async (t) => {
  const patient = uniqueName('fm-wait');
  const hasty = uniqueName('fm-nowait');
  const { dom0, scope } = await dom0For(t, {
    guests: [guestConfig(patient), guestConfig(hasty, [{ name: 'home', path: 'hasty' }])],
  });
  const mp = await mountGuest(scope, { dom0, domain: patient, secret: SECRET });
  const mh = await mountGuest(scope, { dom0, domain: hasty, secret: SECRET, waitMs: 0 });
  await fsp.writeFile(path.join(mp.dir, 'before'), 'written before the restart');
  await fsp.writeFile(path.join(mh.dir, 'before'), 'hasty before');
  const open = await fsp.open(path.join(mp.dir, 'before'), 'r');
  scope.defer(() => open.close().catch(() => {}));

  await dom0.stop('SIGKILL');
  const started = Date.now();
  await assert.rejects(fsp.readFile(path.join(mh.dir, 'before')), { code: 'EIO' });
  assert.ok(Date.now() - started < 2000, 'with --wait-ms 0 a call fails at once');
  const waiting = fsp.readFile(path.join(mp.dir, 'before'), 'utf8');
  await new Promise((r) => setTimeout(r, 300));
  await dom0.spawn();
  assert.equal(await waiting, 'written before the restart', 'the waiting call completes once dom0 is back');

  // The descriptor opened before died with dom0's handles; new ones work. Nothing was remounted.
  await assert.rejects(open.read(Buffer.alloc(8), 0, 8, 0), { code: 'EIO' });
  await fsp.writeFile(path.join(mp.dir, 'after'), 'written after');
  assert.equal(fs.readFileSync(hostPath(dom0, 'home', 'after'), 'utf8'), 'written after');
  await eventually(async () => (await fsp.readFile(path.join(mh.dir, 'before'), 'utf8')) === 'hasty before',
    10_000, 'the --wait-ms 0 guest to reconnect');
  assert.equal(mp.child.exitCode, null);
  assert.equal(mh.child.exitCode, null);
  assert.ok(isMounted(mp.dir) && isMounted(mh.dir));
});

for (const frontend of FRONTENDS) {
  test(`a read-only export mounts read-only: reads work, every change is EROFS (${frontend})`, { timeout: 30_000 }, async (t) => {
    const domain = uniqueName('fm-ro');
    const exports = [{ name: 'home', path: 'home' }, { name: 'docs', path: 'docs', readOnly: true }];
    const { dom0, scope } = await dom0For(t, { guests: [guestConfig(domain, exports)] });
    fs.writeFileSync(hostPath(dom0, 'docs', 'manual'), 'read me');
    const m = await mountGuest(scope, { frontend, dom0, domain, secret: SECRET, exportName: 'docs' });
    assert.equal(m.ready.export, 'docs');
    assert.equal(await fsp.readFile(path.join(m.dir, 'manual'), 'utf8'), 'read me');
    const p = path.join(m.dir, 'manual');
    await assert.rejects(fsp.writeFile(p, 'x'), { code: 'EROFS' });
    await assert.rejects(fsp.appendFile(path.join(m.dir, 'new'), 'x'), { code: 'EROFS' });
    await assert.rejects(fsp.mkdir(path.join(m.dir, 'dir')), { code: 'EROFS' });
    await assert.rejects(fsp.unlink(p), { code: 'EROFS' });
    await assert.rejects(fsp.chmod(p, 0o600), { code: 'EROFS' });
    await assert.rejects(fsp.truncate(p, 0), { code: 'EROFS' });
    assert.equal(fs.readFileSync(hostPath(dom0, 'docs', 'manual'), 'utf8'), 'read me');
  });
}

test('--cache auto: the kernel caches, and a file changed elsewhere is re-read at the next open', { timeout: 30_000 }, async (t) => {
  const domain = uniqueName('fm-auto');
  const { dom0, scope } = await dom0For(t, { guests: [guestConfig(domain)] });
  const m = await mountGuest(scope, { dom0, domain, secret: SECRET, cache: 'auto' });
  assert.equal(m.ready.cache, 'auto');
  const p = path.join(m.dir, 'f');
  await fsp.writeFile(p, 'cached copy');
  assert.equal(await fsp.readFile(p, 'utf8'), 'cached copy');
  fs.writeFileSync(hostPath(dom0, 'home', 'f'), 'changed on dom0, longer');
  fs.utimesSync(hostPath(dom0, 'home', 'f'), 1000, 1000);
  // Attributes are cached for up to a second; once they expire, open sees the new mtime and drops the pages.
  await eventually(async () => (await fsp.readFile(p, 'utf8')) === 'changed on dom0, longer', 5000, 'the new contents');
});

test('--name-cache-ms: another guest\'s unlink shows at once to stat, open and readdir; only re-creating the name waits out the cache', { timeout: 30_000 }, async (t) => {
  const a = uniqueName('fm-nc-a');
  const b = uniqueName('fm-nc-b');
  const shared = [{ name: 'home', path: 'shared' }];
  const { dom0, scope } = await dom0For(t, { guests: [guestConfig(a, shared), guestConfig(b, shared)] });
  const CACHE_MS = 1500;
  const cached = await mountGuest(scope, { dom0, domain: a, secret: SECRET, nameCacheMs: CACHE_MS });
  const other = await mountGuest(scope, { dom0, domain: b, secret: SECRET });
  await fsp.writeFile(path.join(other.dir, 'f'), 'from b');
  assert.equal(await fsp.readFile(path.join(cached.dir, 'f'), 'utf8'), 'from b'); // the name is now cached in a
  await fsp.unlink(path.join(other.dir, 'f'));
  const removedAt = Date.now();
  await assert.rejects(fsp.stat(path.join(cached.dir, 'f')), { code: 'ENOENT' });
  await assert.rejects(fsp.open(path.join(cached.dir, 'f'), 'r'), { code: 'ENOENT' });
  assert.deepEqual(await fsp.readdir(cached.dir), []);
  // The price of the cache: the kernel still believes in the name, so it opens instead of creating.
  await assert.rejects(fsp.writeFile(path.join(cached.dir, 'f'), 'from a'), { code: 'ENOENT' });
  assert.ok(Date.now() - removedAt < CACHE_MS, 'the checks above ran inside the cache window');
  // Once the window has passed, the name is looked up again and created.
  await new Promise((r) => setTimeout(r, CACHE_MS + 200 - (Date.now() - removedAt)));
  await fsp.writeFile(path.join(cached.dir, 'f'), 'from a');
  assert.equal(fs.readFileSync(hostPath(dom0, 'shared', 'f'), 'utf8'), 'from a');
});

test('dom0\'s config chooses a guest\'s caching; the guest\'s --cache overrides it', { timeout: 30_000 }, async (t) => {
  const [auto, overridden, plain] = ['fm-cfg-auto', 'fm-cfg-over', 'fm-cfg-none'].map(uniqueName) as [string, string, string];
  const { dom0, scope } = await dom0For(t, {
    guests: [{ ...guestConfig(auto), cache: 'auto' }, { ...guestConfig(overridden), cache: 'auto' }, guestConfig(plain)],
  });
  assert.equal((await mountGuest(scope, { dom0, domain: auto, secret: SECRET })).ready.cache, 'auto');
  assert.equal((await mountGuest(scope, { dom0, domain: overridden, secret: SECRET, cache: 'none' })).ready.cache, 'none');
  assert.equal((await mountGuest(scope, { dom0, domain: plain, secret: SECRET })).ready.cache, 'none');
});

test('bad command lines exit 2 with the usage; a refused secret exits 1', { timeout: 30_000 }, async (t) => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', MAIN, 'guest', ...args], {
      encoding: 'utf8', timeout: 20_000, env: { ...process.env, XENFS_SECRET: '', ...env },
    }).then(() => ({ code: 0, stderr: '' }), (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }));
  const noMount = await run(['vm1']);
  assert.equal(noMount.code, 2);
  assert.match(noMount.stderr, /--mount DIR is required/);
  assert.match(noMount.stderr, /usage: xenfs guest NAME --mount DIR/);
  const badWait = await run(['vm1', '--mount', '/nonexistent', '--wait-ms', 'soon']);
  assert.equal(badWait.code, 2);
  assert.match(badWait.stderr, /--wait-ms/);
  const secretArg = await run(['vm1', '--mount', '/nonexistent', '--secret', 'x']);
  assert.equal(secretArg.code, 2, 'there is no --secret: argv is readable by every user');

  const domain = uniqueName('fm-refused');
  const { dom0 } = await dom0For(t, { guests: [guestConfig(domain)] });
  const dir = path.join(dom0.dir, 'mnt');
  const refused = await run([domain, '--mount', dir, '--control', dom0.controlPath], { XENFS_SECRET: 'wrong' });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused/);
  assert.equal(isMounted(dir), false);
});

// GuestFs end to end against the real dom0 request engine (native) serving a temporary export over a UNIX
// stream socket. Every assertion about the filesystem is checked on the host side too, where that is cheap.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ErrnoError, type errno } from '../../../core/errors.ts';
import { GuestFs } from '../../../core/frontend/guest-fs.ts';
import { connectStream } from '../../../core/frontend/stream-transport.ts';
import { AccessMask } from '../../../core/protocol/opcodes.ts';
import { type StreamEngine, startStreamEngine } from '../../helpers/stream-engine.ts';

let engine: StreamEngine;
let gfs: GuestFs;
let host: (p: string) => string;

beforeEach(async () => {
  engine = await startStreamEngine();
  host = (p) => path.join(engine.exportDir, p);
  gfs = new GuestFs(await connectStream({ path: engine.socketPath }), 1, { readdirBufferSize: 1024 });
});

afterEach(async () => {
  await gfs.close();
  await engine.close();
});

function errnoIs(name: Parameters<typeof errno>[0], syscall?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ErrnoError, `expected ErrnoError, got ${String(err)}`);
    assert.equal(err.errnoName, name === 'ENOTSUP' ? 'EOPNOTSUPP' : name);
    if (syscall !== undefined) assert.equal(err.syscall, syscall);
    return true;
  };
}

// FORGETs are not awaited; give them a moment before counting the nodes the server still holds.
async function settledNodes(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    if (engine.stats()?.nodes === 0 && engine.stats()?.inFlight === 0) return 0;
    await new Promise((r) => setTimeout(r, 10));
  }
  return engine.stats()?.nodes ?? -1;
}

test('writeFile and readFile round-trip, small and split into 128 KiB requests', async () => {
  await gfs.writeFile('small.txt', 'hello');
  assert.equal(await gfs.readFile('small.txt', 'utf8'), 'hello');
  assert.equal(await fs.readFile(host('small.txt'), 'utf8'), 'hello');
  const big = randomBytes(1024 * 1024 + 12345);
  await gfs.writeFile('/big.bin', big);
  assert.deepEqual(await fs.readFile(host('big.bin')), big);
  const before = engine.stats()?.requests ?? 0;
  assert.deepEqual(await gfs.readFile('big.bin'), big);
  // WALK + OPEN + 9 READs (8 full, 1 partial) + FORGET + RELEASE, give or take the fire-and-forget ones.
  assert.ok((engine.stats()?.requests ?? 0) - before >= 11);
  await gfs.writeFile('empty', '');
  assert.equal((await gfs.readFile('empty')).length, 0);
  assert.equal(await settledNodes(), 0);
});

test('appendFile appends; writeFile with wx refuses an existing file', async () => {
  await gfs.appendFile('log', 'a');
  await gfs.appendFile('log', Buffer.from('bc'));
  assert.equal(await gfs.readFile('log', 'utf8'), 'abc');
  await assert.rejects(gfs.writeFile('log', 'x', { flag: 'wx' }), errnoIs('EEXIST'));
});

test('stat, lstat and access', async () => {
  await fs.writeFile(host('f'), '12345');
  await fs.mkdir(host('d'));
  await fs.symlink('f', host('l'));
  const st = await gfs.stat('f');
  assert.ok(st.isFile());
  assert.equal(st.size, 5);
  const hostSt = await fs.stat(host('f'), { bigint: true });
  assert.equal(st.mtimeNs, hostSt.mtimeNs);
  assert.equal(st.inoBig, hostSt.ino);
  assert.ok((await gfs.stat('d')).isDirectory());
  assert.ok((await gfs.stat('')).isDirectory());
  assert.ok((await gfs.stat('/')).isDirectory());
  assert.ok((await gfs.stat('l')).isFile());
  assert.ok((await gfs.lstat('l')).isSymbolicLink());
  await gfs.access('f');
  await gfs.access('f', AccessMask.R_OK | AccessMask.W_OK);
  await assert.rejects(gfs.stat('missing/x'), (err: unknown) => {
    errnoIs('ENOENT', 'stat')(err);
    assert.equal((err as ErrnoError).message, "ENOENT: no such file or directory, stat 'missing/x'");
    return true;
  });
});

test('symlinks are followed in the guest, confined to the export', async () => {
  await fs.mkdir(host('real/sub'), { recursive: true });
  await fs.writeFile(host('real/sub/file'), 'data');
  await fs.symlink('real', host('rel'));
  await fs.symlink('/real/sub', host('abs'));
  await fs.symlink('../../../../real/sub/file', host('real/escape'));
  await fs.symlink('loop2', host('loop1'));
  await fs.symlink('loop1', host('loop2'));
  await fs.symlink('rel/sub/file', host('chain'));
  assert.equal(await gfs.readFile('rel/sub/file', 'utf8'), 'data');
  assert.equal(await gfs.readFile('abs/file', 'utf8'), 'data');
  assert.equal(await gfs.readFile('chain', 'utf8'), 'data');
  // '..' past the export root stays at the root, as in a chroot.
  assert.equal(await gfs.readFile('real/escape', 'utf8'), 'data');
  assert.equal(await gfs.readFile('real/../real/sub/file', 'utf8'), 'data');
  assert.equal(await gfs.readlink('abs'), '/real/sub');
  await assert.rejects(gfs.stat('loop1'), errnoIs('ELOOP', 'stat'));
  assert.ok((await gfs.lstat('loop1')).isSymbolicLink());
  // Writing through a symlink creates its dangling target.
  await fs.symlink('real/new-target', host('dangling'));
  await gfs.writeFile('dangling', 'made');
  assert.equal(await fs.readFile(host('real/new-target'), 'utf8'), 'made');
  await gfs.writeFile('rel/sub/file', 'rewritten');
  assert.equal(await fs.readFile(host('real/sub/file'), 'utf8'), 'rewritten');
  assert.equal(await settledNodes(), 0);
});

test('readdir pages through a large directory; an early stop releases the handle', async () => {
  const names = Array.from({ length: 300 }, (_, i) => `entry-${String(i).padStart(4, '0')}-${'x'.repeat(i % 40)}`);
  await Promise.all(names.map((n) => fs.writeFile(host(n), '')));
  await fs.mkdir(host('sub'));
  const listed = await gfs.readdir('');
  assert.deepEqual(listed.sort(), [...names, 'sub'].sort());
  const types = new Map<string, boolean>();
  for await (const e of gfs.readdirEntries('/')) types.set(e.name, e.isDirectory());
  assert.equal(types.get('sub'), true);
  assert.equal(types.get(names[0] ?? ''), false);
  for await (const e of gfs.readdirEntries('')) {
    assert.ok(e.name.length > 0);
    break;
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(engine.stats()?.handles, 0);
  assert.deepEqual(await gfs.readdir('sub'), []);
  await assert.rejects(gfs.readdir('entry-0000-'), errnoIs('ENOTDIR', 'readdir'));
});

test('mkdir (plain and recursive), rmdir, unlink, rename with flags', async () => {
  await gfs.mkdir('a', { mode: 0o750 });
  assert.equal((await fs.stat(host('a'))).mode & 0o777, 0o750);
  assert.equal(await gfs.mkdir('a/b/c/d', { recursive: true }), 'a/b');
  assert.equal(await gfs.mkdir('a/b/c/d', { recursive: true }), undefined);
  await assert.rejects(gfs.mkdir('a'), errnoIs('EEXIST', 'mkdir'));
  await assert.rejects(gfs.rmdir('a'), errnoIs('ENOTEMPTY', 'rmdir'));
  await gfs.writeFile('a/f', '1');
  await gfs.writeFile('a/g', '2');
  await assert.rejects(gfs.rename('a/f', 'a/g', { noreplace: true }), errnoIs('EEXIST', 'rename'));
  await gfs.rename('a/f', 'a/g', { exchange: true });
  assert.equal(await fs.readFile(host('a/g'), 'utf8'), '1');
  assert.equal(await fs.readFile(host('a/f'), 'utf8'), '2');
  await gfs.rename('a/f', 'a/b/moved');
  assert.equal(await fs.readFile(host('a/b/moved'), 'utf8'), '2');
  await gfs.unlink('a/b/moved');
  await assert.rejects(fs.stat(host('a/b/moved')));
  await gfs.rmdir('a/b/c/d');
  await assert.rejects(gfs.rmdir('a/b/c/.'), errnoIs('EINVAL', 'rmdir'));
  assert.equal(await settledNodes(), 0);
});

test('file handles: positional and sequential I/O, truncate, allocate, sync, close', async () => {
  const h = await gfs.open('h.bin', 'w+');
  const payload = randomBytes(300_000);
  assert.equal((await h.write(payload)).bytesWritten, payload.length);
  assert.equal((await h.write(Buffer.from('tail'))).bytesWritten, 4);
  const back = Buffer.alloc(payload.length);
  assert.equal((await h.read(back, 0, back.length, 0)).bytesRead, payload.length);
  assert.deepEqual(back, payload);
  const at = Buffer.alloc(10);
  const { bytesRead } = await h.read(at, 0, 10, payload.length);
  assert.equal(bytesRead, 4);
  assert.equal(at.subarray(0, 4).toString(), 'tail');
  assert.equal((await h.stat()).size, payload.length + 4);
  // A 1 MiB read is eight 128 KiB requests, all issued at once (the window is 8); the ones past EOF come back short.
  assert.equal(await settledNodes(), 0);
  const before = engine.stats()?.requests ?? 0;
  const mib = Buffer.alloc(1024 * 1024);
  assert.equal((await h.read(mib, 0, mib.length, 0)).bytesRead, payload.length + 4);
  assert.equal((engine.stats()?.requests ?? 0) - before, 8);
  assert.deepEqual(mib.subarray(0, payload.length), payload);
  await h.truncate(100);
  assert.equal((await h.stat()).size, 100);
  await h.allocate(0, 8192);
  assert.equal((await h.stat()).size, 8192);
  await h.sync();
  await h.datasync();
  await h.chmod(0o600);
  assert.equal((await fs.stat(host('h.bin'))).mode & 0o777, 0o600);
  await h.close();
  await h.close();
  await assert.rejects(h.read(Buffer.alloc(1), 0, 1, 0), errnoIs('EBADF'));
  assert.equal(engine.stats()?.handles, 0);
  await assert.rejects(gfs.open('nope', 'r'), errnoIs('ENOENT', 'open'));
  await assert.rejects(gfs.open('h.bin', 'bogus'), errnoIs('EINVAL', 'open'));
});

test('links, attributes and statfs', async () => {
  await gfs.writeFile('orig', 'x');
  await gfs.link('orig', 'hard');
  assert.equal((await gfs.stat('orig')).nlink, 2);
  await gfs.symlink('orig', 'soft');
  assert.equal(await fs.readlink(host('soft')), 'orig');
  await gfs.chmod('orig', 0o640);
  assert.equal((await fs.stat(host('orig'))).mode & 0o777, 0o640);
  await gfs.utimes('orig', 1_000_000, new Date(2_000_000_000));
  const st = await fs.stat(host('orig'));
  assert.equal(st.atimeMs, 1_000_000_000);
  assert.equal(st.mtimeMs, 2_000_000_000);
  await gfs.truncate('orig', 3);
  assert.equal((await fs.stat(host('orig'))).size, 3);
  await gfs.chown('orig', -1, -1);
  const sfs = await gfs.statfs('');
  assert.ok(sfs.bsize > 0 && sfs.blocks > 0);
  await gfs.mknod('fifo', 0o010644);
  assert.ok((await fs.lstat(host('fifo'))).isFIFO());
  assert.equal(await settledNodes(), 0);
});

test('extended attributes, including values past the first 4 KiB guess', async () => {
  // ext4 keeps all of a file's xattrs in one 4 KiB block; tmpfs takes larger values, which the size probe needs.
  const shm = await startStreamEngine({ parent: '/dev/shm' });
  const xfs = new GuestFs(await connectStream({ path: shm.socketPath }), 1);
  try {
    await xfs.writeFile('x', '');
    await xfs.setxattr('x', 'user.small', 'v1');
    const large = randomBytes(10_000);
    await xfs.setxattr('x', 'user.large', large);
    assert.equal((await xfs.getxattr('x', 'user.small')).toString(), 'v1');
    assert.deepEqual(await xfs.getxattr('x', 'user.large'), large);
    assert.deepEqual((await xfs.listxattr('x')).sort(), ['user.large', 'user.small']);
    await assert.rejects(xfs.setxattr('x', 'user.small', 'v2', { create: true }), errnoIs('EEXIST', 'setxattr'));
    await xfs.setxattr('x', 'user.small', 'v2', { replace: true });
    assert.equal((await xfs.getxattr('x', 'user.small')).toString(), 'v2');
    await xfs.removexattr('x', 'user.small');
    await assert.rejects(xfs.getxattr('x', 'user.small'), errnoIs('ENODATA', 'getxattr'));
    await assert.rejects(xfs.setxattr('x', 'user.huge', Buffer.alloc(65537)), errnoIs('E2BIG', 'setxattr'));
  } finally {
    await xfs.close();
    await shm.close();
  }
});

test('bad names are refused before anything is sent', async () => {
  const before = engine.stats()?.requests ?? 0;
  await assert.rejects(gfs.mkdir(`${'n'.repeat(256)}`), errnoIs('ENAMETOOLONG', 'mkdir'));
  await assert.rejects(gfs.unlink('a\0b'), errnoIs('EINVAL', 'unlink'));
  await assert.rejects(gfs.symlink('', 'l'), errnoIs('ENOENT', 'symlink'));
  assert.equal(engine.stats()?.requests ?? 0, before);
});

test('a guest\'s lone request is served on its own session thread; fsync always goes to the worker pool', async () => {
  const pooled = (): number => engine.stats()?.pooled ?? -1;
  await gfs.writeFile('data', randomBytes(4096));
  const before = pooled();
  // One request at a time, as a FUSE front end serving one application thread sends them: no hop to the pool.
  await gfs.mkdir('dir');
  await gfs.mknod('dir/node', 0o100644, 0);
  await gfs.rename('dir/node', 'dir/moved');
  await gfs.unlink('dir/moved');
  await gfs.rmdir('dir');
  const h = await gfs.open('data', 'r+');
  const { bytesRead } = await h.read(Buffer.alloc(4096), 0, 4096, 0);
  assert.equal(bytesRead, 4096);
  await h.write(Buffer.from('x'), 0, 1, 0);
  assert.equal(pooled(), before, 'mkdir, mknod, rename, unlink, rmdir, open, read and write stayed on the session thread');
  await h.sync();
  assert.equal(pooled(), before + 1, 'fsync went to the pool');
  await h.close();
});

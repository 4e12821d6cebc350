// Services read guests' files on dom0 through GuestReader: confined to the export (symlinks at the final or an
// intermediate component, '..', a directory swapped for a symlink while reads go on), regular files only, size
// caps, and a consistent view of a file being written. All on real directories, with real writers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ErrnoError, LimitError } from '../../../core/errors.ts';
import { parseConfig } from '../../../core/config/config.ts';
import { GuestReader } from '../../../core/plugins/guest-reader.ts';
import type { GuestTarget } from '../../../core/plugins/plugin-api.ts';

let tmp = '';
let home = '';
let outside = '';
let reader: GuestReader;
let socketServer: net.Server | undefined;

const t = (p: string, exp = 'home', guest = 'g1'): GuestTarget => ({ guest, export: exp, path: p });
const BIG = { maxBytes: 1 << 30 };

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-guest-reader-'));
  home = path.join(tmp, 'exports', 'home');
  outside = path.join(tmp, 'outside');
  fs.mkdirSync(path.join(home, 'a', 'b'), { recursive: true });
  fs.mkdirSync(outside);
  fs.mkdirSync(path.join(tmp, 'pub'));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET');
  fs.writeFileSync(path.join(home, 'a', 'f.txt'), 'inside');
  fs.writeFileSync(path.join(home, 'a', 'b', 'deep.txt'), 'deep');
  fs.writeFileSync(path.join(home, 'hundred.bin'), Buffer.alloc(100, 7));
  fs.writeFileSync(path.join(tmp, 'pub', 'readme'), 'shared');
  fs.symlinkSync('a/f.txt', path.join(home, 'link-in'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(home, 'link-out'));
  fs.symlinkSync(outside, path.join(home, 'dir-out'));
  fs.symlinkSync('a', path.join(home, 'dir-in'));
  fs.symlinkSync('../../../outside', path.join(home, 'a', 'up'));
  execFileSync('mkfifo', [path.join(home, 'fifo')]);
  socketServer = net.createServer();
  await new Promise<void>((resolve) => socketServer?.listen(path.join(home, 'sock'), resolve));
  // The export is reached through a symlink in dom0's config: that one is dom0's own and is followed.
  fs.symlinkSync(path.join(tmp, 'exports'), path.join(tmp, 'exports-link'));
  const config = parseConfig({
    stateDir: 'state',
    exports: { pub: { path: path.join(tmp, 'pub') } },
    guests: [
      { name: 'g1', secret: 's', exports: [{ name: 'home', path: path.join(tmp, 'exports-link', 'home') }, 'pub'] },
      { name: 'g2', secret: 's', exports: ['pub'] },
    ],
  }, path.join(tmp, 'xenfs.yaml'));
  reader = new GuestReader(config);
});

after(async () => {
  await new Promise<void>((resolve) => (socketServer ? socketServer.close(() => resolve()) : resolve()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function rejectsErrno(p: Promise<unknown>, name: string, target: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ErrnoError, `expected ErrnoError ${name}, got ${String(err)}`);
    assert.equal(err.errnoName, name);
    assert.equal(err.path, target);
    assert.ok(err.message.includes(target), err.message);
    return true;
  });
}

test('reads a file inside the export, with the stat it matches', async () => {
  const { data, stat } = await reader.readFile(t('a/f.txt'), BIG);
  assert.equal(data.toString(), 'inside');
  const st = fs.statSync(path.join(home, 'a', 'f.txt'));
  assert.equal(stat.size, 6);
  assert.equal(stat.ino, st.ino);
  assert.equal(stat.type, 'file');
  assert.ok(Math.abs(stat.mtimeMs - st.mtimeMs) < 1);
  assert.equal((await reader.readFile(t('a/b/deep.txt'), BIG)).data.toString(), 'deep');
  // An intermediate symlink that stays inside the export is fine.
  assert.equal((await reader.readFile(t('dir-in/f.txt'), BIG)).data.toString(), 'inside');
  assert.equal((await reader.readFile(t('readme', 'pub', 'g2'), BIG)).data.toString(), 'shared');
});

test('a final symlink is never followed, inside or out', async () => {
  await rejectsErrno(reader.readFile(t('link-in'), BIG), 'ELOOP', 'g1:home/link-in');
  await rejectsErrno(reader.readFile(t('link-out'), BIG), 'ELOOP', 'g1:home/link-out');
  await rejectsErrno(reader.createReadStream(t('link-out'), BIG), 'ELOOP', 'g1:home/link-out');
  // O_DIRECTORY|O_NOFOLLOW on a symlink: the kernel says ENOTDIR.
  await rejectsErrno(reader.readdir(t('dir-out')), 'ENOTDIR', 'g1:home/dir-out');
  const st = await reader.stat(t('link-out'));
  assert.equal(st.type, 'symlink');
});

test('an intermediate symlink leading outside is refused after the open, by where the descriptor is', async () => {
  await rejectsErrno(reader.readFile(t('dir-out/secret.txt'), BIG), 'EACCES', 'g1:home/dir-out/secret.txt');
  await rejectsErrno(reader.readFile(t('a/up/secret.txt'), BIG), 'EACCES', 'g1:home/a/up/secret.txt');
  await rejectsErrno(reader.createReadStream(t('dir-out/secret.txt'), BIG), 'EACCES', 'g1:home/dir-out/secret.txt');
  await rejectsErrno(reader.stat(t('dir-out/secret.txt')), 'EACCES', 'g1:home/dir-out/secret.txt');
  await rejectsErrno(reader.readdir(t('a/up/')), 'EINVAL', 'g1:home/a/up/');
  await rejectsErrno(reader.readdir(t('dir-out/.')), 'EINVAL', 'g1:home/dir-out/.');
  // Inside the export, an intermediate symlink is followed; a final one is not, even for a directory.
  assert.deepEqual((await reader.readdir(t('dir-in/b'))).map((e) => e.name), ['deep.txt']);
  assert.equal((await reader.stat(t('dir-in/f.txt'))).size, 6);
  await rejectsErrno(reader.readdir(t('dir-in')), 'ENOTDIR', 'g1:home/dir-in');
});

test('paths that could mean anything but a plain descent are refused', async () => {
  await rejectsErrno(reader.readFile(t('../outside/secret.txt'), BIG), 'EACCES', 'g1:home/../outside/secret.txt');
  await rejectsErrno(reader.readFile(t('a/../a/f.txt'), BIG), 'EACCES', 'g1:home/a/../a/f.txt');
  await rejectsErrno(reader.stat(t('..')), 'EACCES', 'g1:home/..');
  await rejectsErrno(reader.readFile(t('/etc/passwd'), BIG), 'EINVAL', 'g1:home//etc/passwd');
  await rejectsErrno(reader.readFile(t('a//f.txt'), BIG), 'EINVAL', 'g1:home/a//f.txt');
  await rejectsErrno(reader.readFile(t('a/./f.txt'), BIG), 'EINVAL', 'g1:home/a/./f.txt');
  await rejectsErrno(reader.readFile(t('a/f.txt\0x'), BIG), 'EINVAL', 'g1:home/a/f.txt\0x');
  await rejectsErrno(reader.readFile(t('x'.repeat(5000)), BIG), 'ENAMETOOLONG', `g1:home/${'x'.repeat(5000)}`);
  await rejectsErrno(reader.readFile(t('a/f.txt', 'nope'), BIG), 'ENOENT', 'g1:nope/a/f.txt');
  await rejectsErrno(reader.readFile(t('a/f.txt', 'home', 'g9'), BIG), 'ENOENT', 'g9:home/a/f.txt');
  // g2 has only the shared export: g1's home is not g2's to read.
  await rejectsErrno(reader.readFile(t('a/f.txt', 'home', 'g2'), BIG), 'ENOENT', 'g2:home/a/f.txt');
  await rejectsErrno(reader.readFile(t('missing'), BIG), 'ENOENT', 'g1:home/missing');
});

test('only regular files are read: directories, FIFOs and sockets are refused without blocking', async () => {
  await rejectsErrno(reader.readFile(t('a'), BIG), 'EISDIR', 'g1:home/a');
  await rejectsErrno(reader.readFile(t(''), BIG), 'EISDIR', 'g1:home/');
  await rejectsErrno(reader.readFile(t('fifo'), BIG), 'EINVAL', 'g1:home/fifo');
  await rejectsErrno(reader.createReadStream(t('fifo'), BIG), 'EINVAL', 'g1:home/fifo');
  await rejectsErrno(reader.readFile(t('sock'), BIG), 'EINVAL', 'g1:home/sock');
  await rejectsErrno(reader.readdir(t('a/f.txt')), 'ENOTDIR', 'g1:home/a/f.txt');
  assert.equal((await reader.stat(t('fifo'))).type, 'other');
  assert.equal((await reader.stat(t(''))).type, 'directory');
  assert.equal((await reader.stat(t('a'))).type, 'directory');
});

test('readdir lists the export\'s root and subdirectories with types, bounded by maxEntries', async () => {
  const root = await reader.readdir(t(''));
  const types = Object.fromEntries(root.map((e) => [e.name, e.type]));
  assert.equal(types.a, 'directory');
  assert.equal(types['hundred.bin'], 'file');
  assert.equal(types['link-out'], 'symlink');
  assert.equal(types.fifo, 'other');
  await assert.rejects(reader.readdir(t(''), { maxEntries: 3 }),
    (err: unknown) => err instanceof LimitError && err.limit === 'maxEntries');
  assert.equal((await reader.readdir(t('a/b'), { maxEntries: 1 })).length, 1);
});

test('size caps: a file over maxBytes is a LimitError naming the limit, at exactly maxBytes it is read', async () => {
  await assert.rejects(reader.readFile(t('hundred.bin'), { maxBytes: 99 }),
    (err: unknown) => err instanceof LimitError && err.limit === 'maxBytes' && /100 bytes, more than 99/.test(err.message));
  await assert.rejects(reader.readFile(t('hundred.bin'), { maxBytes: 10, limit: 'services.indexer.config.maxFileBytes' }),
    (err: unknown) => err instanceof LimitError && err.limit === 'services.indexer.config.maxFileBytes');
  await assert.rejects(reader.createReadStream(t('hundred.bin'), { maxBytes: 50 }),
    (err: unknown) => err instanceof LimitError && err.limit === 'maxBytes');
  assert.equal((await reader.readFile(t('hundred.bin'), { maxBytes: 100 })).data.length, 100);
});

test('createReadStream gives the content and the stat it started from', async () => {
  const { stream, stat } = await reader.createReadStream(t('hundred.bin'), { maxBytes: 100 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), Buffer.alloc(100, 7));
  assert.equal(stat.size, 100);
});

test('a stream of a file that changes while it is read ends in EAGAIN, not in a silent mix', async (tt) => {
  const file = path.join(home, 'streamed.bin');
  fs.writeFileSync(file, Buffer.alloc(512 * 1024, 1));
  tt.after(() => fs.rmSync(file, { force: true }));
  const { stream } = await reader.createReadStream(t('streamed.bin'), BIG);
  let first = true;
  await assert.rejects((async () => {
    for await (const c of stream) {
      assert.ok((c as Buffer).length > 0);
      if (first) fs.appendFileSync(file, 'more');
      first = false;
    }
  })(), (err: unknown) => err instanceof ErrnoError && err.errnoName === 'EAGAIN' && err.path === 'g1:home/streamed.bin');
});

test('consistent view: a file a writer keeps appending to fails with EAGAIN after bounded retries', async (tt) => {
  const file = path.join(home, 'growing.log');
  fs.writeFileSync(file, Buffer.alloc(8 * 1024 * 1024, 0x61));
  const writer = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'a');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    fs.writeSync(fd, 'b'); process.stdout.write('ready\\n');
    for (;;) { fs.writeSync(fd, 'bbbbbbbbbb'); Atomics.wait(pause, 0, 0, 0.05); }
  `, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  tt.after(() => {
    writer.kill('SIGKILL');
    fs.rmSync(file, { force: true });
  });
  await new Promise<void>((resolve, reject) => {
    writer.stdout.once('data', () => resolve());
    writer.once('exit', (code) => reject(new Error(`writer exited with ${code}`)));
  });
  await assert.rejects(reader.readFile(t('growing.log'), BIG), (err: unknown) =>
    err instanceof ErrnoError && err.errnoName === 'EAGAIN' && err.path === 'g1:home/growing.log' &&
    /being written/.test(String((err.cause as Error).message)));
});

test('consistent view: an append during the first read is retried and the result matches its stat', async (tt) => {
  const file = path.join(home, 'once.bin');
  const original = Buffer.alloc(64 * 1024 * 1024, 0x41);
  fs.writeFileSync(file, original);
  tt.after(() => fs.rmSync(file, { force: true }));
  // The writer appends once, mid-read: when the reader holds the file open and this process has read more
  // than 4 MiB since (readFile reads in 1 MiB chunks, so the read of the 64 MiB file has begun, not ended).
  const rchar = (): number => Number(/rchar: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))?.[1]);
  let openedAt: number | undefined;
  let appended = false;
  const watcher = setInterval(() => {
    const open = fs.readdirSync('/proc/self/fd').some((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith('/once.bin');
      } catch {
        return false;
      }
    });
    if (!open) return;
    openedAt ??= rchar();
    if (rchar() - openedAt > 4 * 1024 * 1024) {
      fs.appendFileSync(file, 'tail');
      appended = true;
      clearInterval(watcher);
    }
  }, 1);
  tt.after(() => clearInterval(watcher));
  const { data, stat } = await reader.readFile(t('once.bin'), BIG);
  assert.ok(appended, 'the writer never saw the file open');
  assert.equal(stat.size, original.length + 4);
  assert.equal(data.length, stat.size);
  assert.equal(data.subarray(-4).toString(), 'tail');
  assert.ok(Math.abs(stat.mtimeMs - fs.statSync(file).mtimeMs) < 1e-3);
});

test('a directory swapped for a symlink to outside while reads go on: never a byte from outside', async (tt) => {
  const dir = path.join(home, 'sw');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'inside');
  fs.symlinkSync(outside, path.join(home, 'sw.link'));
  // A separate process swaps sw between the real directory and a symlink to `outside` as fast as it can.
  const swapper = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    const [, h] = process.argv;
    process.stdout.write('ready\\n');
    for (;;) {
      fs.renameSync(h + '/sw', h + '/sw.real'); fs.renameSync(h + '/sw.link', h + '/sw');
      fs.renameSync(h + '/sw', h + '/sw.link'); fs.renameSync(h + '/sw.real', h + '/sw');
    }
  `, home], { stdio: ['ignore', 'pipe', 'inherit'] });
  tt.after(() => {
    swapper.kill('SIGKILL');
    for (const n of ['sw', 'sw.real', 'sw.link']) fs.rmSync(path.join(home, n), { recursive: true, force: true });
  });
  await new Promise<void>((resolve) => swapper.stdout.once('data', () => resolve()));
  const seen = new Map<string, number>();
  const deadline = Date.now() + 1500;
  while (Date.now() < deadline) {
    let what: string;
    try {
      what = `read:${(await reader.readFile(t('sw/secret.txt'), BIG)).data.toString()}`;
    } catch (err) {
      assert.ok(err instanceof ErrnoError, String(err));
      what = err.errnoName;
    }
    seen.set(what, (seen.get(what) ?? 0) + 1);
  }
  assert.equal(seen.get('read:SECRET'), undefined, `read outside the export: ${JSON.stringify([...seen])}`);
  assert.ok((seen.get('EACCES') ?? 0) > 0, `the swap never reached the descriptor check: ${JSON.stringify([...seen])}`);
  assert.ok((seen.get('read:inside') ?? 0) > 0, `never read the real file: ${JSON.stringify([...seen])}`);
  for (const k of seen.keys()) assert.ok(['read:inside', 'EACCES', 'ENOENT', 'ENOTDIR'].includes(k), k);
});

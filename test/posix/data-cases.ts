// File data: open flags (O_APPEND, O_EXCL, O_TRUNC, creation modes), sparse files, offsets past 4 GiB,
// truncation, unlinked-but-open files, sync calls, and byte-for-byte integrity of large and concurrent I/O.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs, { constants } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { rejectsWith, withFile } from './expect.ts';
import type { PosixContext } from './posix-suite.ts';

const GiB = 2 ** 30;

async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function dataCases(ctx: PosixContext): void {
  it('O_APPEND writes at the end whatever the position, and after growth through another descriptor', async () => {
    const p = path.join(await ctx.fresh(), 'log');
    await fsp.writeFile(p, 'abc');
    await withFile(p, 'a', (appender) => withFile(p, 'r+', async (other) => {
      await appender.write('XY', 0); // pwrite on an O_APPEND descriptor appends on Linux
      await other.write('0123456789', 5);
      await appender.write('Z', 1);
    }));
    assert.equal(await fsp.readFile(p, 'utf8'), 'abcXY0123456789Z');
    // O_APPEND on a file the same open creates ('a' on a new name).
    const fresh = path.join(path.dirname(p), 'new-log');
    await fsp.appendFile(fresh, 'one');
    await fsp.appendFile(fresh, 'two');
    assert.equal(await fsp.readFile(fresh, 'utf8'), 'onetwo');
  });

  it('O_EXCL creates only new names (a dangling symlink counts as taken); O_CREAT alone keeps data', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await withFile(p, 'wx+', (h) => h.write('data'));
    await rejectsWith(fsp.open(p, 'wx'), 'EEXIST');
    await fsp.symlink('nowhere', path.join(d, 'dangling'));
    await rejectsWith(fsp.open(path.join(d, 'dangling'), 'wx'), 'EEXIST', 'O_EXCL through a dangling symlink');
    await withFile(p, constants.O_RDWR | constants.O_CREAT, async () => {});
    assert.equal(await fsp.readFile(p, 'utf8'), 'data');
    // Without O_EXCL, O_CREAT through a dangling symlink creates its target.
    await withFile(path.join(d, 'dangling'), 'a', async () => {});
    assert.ok((await fsp.stat(path.join(d, 'nowhere'))).isFile());
  });

  it('O_TRUNC empties an existing file; r+ does not; created files get mode & ~umask', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await fsp.writeFile(p, 'hello world');
    await withFile(p, 'r+', async () => {});
    assert.equal((await fsp.stat(p)).size, 11);
    await withFile(p, constants.O_RDWR | constants.O_TRUNC, async (h) => {
      assert.equal((await h.stat()).size, 0);
      await h.write('new');
    });
    assert.equal(await fsp.readFile(p, 'utf8'), 'new');
    await fsp.writeFile(p, 'w truncates');
    assert.equal(await fsp.readFile(p, 'utf8'), 'w truncates');
    const umask = process.umask();
    await fsp.writeFile(path.join(d, 'm640'), '', { mode: 0o640 });
    assert.equal((await fsp.stat(path.join(d, 'm640'))).mode & 0o7777, 0o640 & ~umask);
    // A file created read-only is still writable through the descriptor that created it.
    await withFile(path.join(d, 'ro'), 'wx', (ro) => ro.write('still writable'), 0o444);
    assert.equal(await fsp.readFile(path.join(d, 'ro'), 'utf8'), 'still writable');
  });

  it('sparse files: holes read as zeros and take no space', async () => {
    const p = path.join(await ctx.fresh(), 'sparse');
    await withFile(p, 'w+', async (h) => {
      await h.write(Buffer.from('tail'), 0, 4, GiB);
      const st = await h.stat();
      assert.equal(st.size, GiB + 4);
      assert.ok(st.blocks * 512 < 1024 * 1024, `a 1 GiB hole took ${st.blocks * 512} bytes`);
      const hole = Buffer.alloc(64 * 1024, 0xff);
      const { bytesRead } = await h.read(hole, 0, hole.length, GiB / 2);
      assert.equal(bytesRead, hole.length);
      assert.ok(hole.every((b) => b === 0), 'a hole read back non-zero bytes');
      await h.truncate(2 * GiB);
      assert.equal((await h.stat()).size, 2 * GiB);
    });
  });

  it('offsets past 4 GiB: a write at 5 GiB reads back, and sizes are exact', async () => {
    const p = path.join(await ctx.fresh(), 'big');
    const at = 5 * GiB + 123;
    await withFile(p, 'w+', async (h) => {
      await h.write(Buffer.from('past four gibibytes'), 0, 19, at);
      assert.equal((await h.stat()).size, at + 19);
      const back = Buffer.alloc(25);
      const { bytesRead } = await h.read(back, 0, 25, at - 3);
      assert.equal(bytesRead, 22);
      assert.deepEqual(back.subarray(0, 22), Buffer.concat([Buffer.alloc(3), Buffer.from('past four gibibytes')]));
    });
    const host = ctx.hostPath(p);
    if (host !== undefined) assert.equal(fs.statSync(host).size, at + 19);
    await fsp.truncate(p, 4 * GiB + 1);
    assert.equal((await fsp.stat(p)).size, 4 * GiB + 1);
  });

  it('truncate and ftruncate grow with zeros and shrink', async () => {
    const p = path.join(await ctx.fresh(), 'f');
    await fsp.writeFile(p, 'abcdef');
    await fsp.truncate(p, 3);
    assert.equal(await fsp.readFile(p, 'utf8'), 'abc');
    await fsp.truncate(p, 6);
    assert.deepEqual(await fsp.readFile(p), Buffer.from([0x61, 0x62, 0x63, 0, 0, 0]));
    await withFile(p, 'r+', (h) => h.truncate(1));
    assert.equal(await fsp.readFile(p, 'utf8'), 'a');
  });

  it('a file unlinked while open stays readable and writable through its descriptor', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'doomed');
    await fsp.writeFile(p, 'still here');
    await withFile(p, 'r+', async (h) => {
      await fsp.unlink(p);
      await rejectsWith(fsp.stat(p), 'ENOENT');
      await h.write('STILL', 0);
      const buf = Buffer.alloc(32);
      const { bytesRead } = await h.read(buf, 0, 32, 0);
      assert.equal(buf.toString('utf8', 0, bytesRead), 'STILL here');
      assert.equal((await h.stat()).size, 10);
    });
    // libfuse2 parks such a file under a hidden name until the last close; then it goes.
    await waitUntil(async () => (await fsp.readdir(d)).length === 0, 5000, 'the unlinked file to go');
  });

  it('fsync and fdatasync on files, fsync on directories', async () => {
    const d = await ctx.fresh();
    await withFile(path.join(d, 'f'), 'w', async (h) => {
      await h.write('durable');
      await h.sync();
      await h.datasync();
    });
    await withFile(d, 'r', (dir) => dir.sync());
  });

  it('large and odd-sized I/O round-trips byte for byte', async () => {
    const d = await ctx.fresh();
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    await fsp.writeFile(path.join(d, 'big'), data);
    assert.ok((await fsp.readFile(path.join(d, 'big'))).equals(data), 'whole-file round trip');
    // The last piece lands past the end: the model grows by a hole of zeros, as the file must.
    const model = Buffer.alloc(3_300_000);
    data.copy(model);
    await withFile(path.join(d, 'big'), 'r+', async (h) => {
      for (const [at, len] of [[1, 1], [4095, 2], [131071, 131074], [1_000_003, 300_001], [3_200_000, 100_000]]) {
        const piece = randomBytes(len as number);
        await h.write(piece, 0, piece.length, at);
        piece.copy(model, at);
      }
      const back = Buffer.alloc(model.length + 100);
      const { bytesRead } = await h.read(back, 0, back.length, 0);
      assert.equal(bytesRead, model.length);
    });
    const final = await fsp.readFile(path.join(d, 'big'));
    assert.ok(final.equals(model), 'patched file differs from the model');
  });

  it('many files written and read concurrently', async () => {
    const d = await ctx.fresh();
    const blobs = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 997));
    await Promise.all(blobs.map((b, i) => fsp.writeFile(path.join(d, `c${i}`), b)));
    const back = await Promise.all(blobs.map((_, i) => fsp.readFile(path.join(d, `c${i}`))));
    back.forEach((b, i) => assert.ok(b.equals(blobs[i] as Buffer), `file c${i} differs`));
  });
}

// Names: hard links, symlinks, rename over files and directories, special files, and large directories.
//
// rename's RENAME_NOREPLACE and RENAME_EXCHANGE are not tested here: Node has no renameat2, and neither does
// anything else this suite may run (Python, coreutils 9.1). A front end speaking FUSE < 7.23 (libfuse2) could
// not carry them anyway: the kernel refuses renameat2 flags on such a mount with EINVAL.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { rejectsWith, sh, withFile } from './expect.ts';
import type { PosixContext } from './posix-suite.ts';

// 100k when the host side can build the fixture quickly, else what the mount itself can create in a few seconds.
const BIG_DIR_HOST = 100_000;
const BIG_DIR_MOUNT = 2_000;
// Below ext4's 65,000 links per inode.
const LINKS_PER_FILE = 50_000;

export function namespaceCases(ctx: PosixContext): void {
  it('hard links share inode and data; nlink counts them', async () => {
    const d = await ctx.fresh();
    const a = path.join(d, 'a');
    const b = path.join(d, 'b');
    await fsp.writeFile(a, 'shared');
    await fsp.link(a, b);
    const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
    assert.equal(sa.ino, sb.ino);
    assert.equal(sa.nlink, 2);
    assert.equal(sb.nlink, 2);
    await fsp.appendFile(b, ' data');
    assert.equal(await fsp.readFile(a, 'utf8'), 'shared data');
    await fsp.unlink(a);
    assert.equal((await fsp.stat(b)).nlink, 1);
    assert.equal(await fsp.readFile(b, 'utf8'), 'shared data');
  });

  it('symlinks: relative and into subdirectories, followed by stat and open, not by lstat and readlink', async () => {
    const d = await ctx.fresh();
    await fsp.mkdir(path.join(d, 'sub'));
    await fsp.writeFile(path.join(d, 'sub', 'target'), 'pointed at');
    await fsp.symlink('sub/target', path.join(d, 'rel'));
    await fsp.symlink('../sub/target', path.join(d, 'sub', 'up'));
    await fsp.symlink('sub', path.join(d, 'dirlink'));
    assert.equal(await fsp.readlink(path.join(d, 'rel')), 'sub/target');
    assert.ok((await fsp.lstat(path.join(d, 'rel'))).isSymbolicLink());
    assert.equal((await fsp.lstat(path.join(d, 'rel'))).size, 'sub/target'.length);
    assert.ok((await fsp.stat(path.join(d, 'rel'))).isFile());
    assert.equal(await fsp.readFile(path.join(d, 'rel'), 'utf8'), 'pointed at');
    assert.equal(await fsp.readFile(path.join(d, 'sub', 'up'), 'utf8'), 'pointed at');
    assert.equal(await fsp.readFile(path.join(d, 'dirlink', 'target'), 'utf8'), 'pointed at');
    await fsp.writeFile(path.join(d, 'rel'), 'written through');
    assert.equal(await fsp.readFile(path.join(d, 'sub', 'target'), 'utf8'), 'written through');
    const long = 'x/'.repeat(1000) + 'end';
    await fsp.symlink(long, path.join(d, 'long'));
    assert.equal(await fsp.readlink(path.join(d, 'long')), long);
  });

  it('rename over an existing file replaces it; over an empty directory too', async () => {
    const d = await ctx.fresh();
    await fsp.writeFile(path.join(d, 'src'), 'new');
    await fsp.writeFile(path.join(d, 'dst'), 'old');
    const srcIno = (await fsp.stat(path.join(d, 'src'))).ino;
    await fsp.rename(path.join(d, 'src'), path.join(d, 'dst'));
    await rejectsWith(fsp.stat(path.join(d, 'src')), 'ENOENT');
    assert.equal(await fsp.readFile(path.join(d, 'dst'), 'utf8'), 'new');
    assert.equal((await fsp.stat(path.join(d, 'dst'))).ino, srcIno);

    await fsp.mkdir(path.join(d, 'full'));
    await fsp.writeFile(path.join(d, 'full', 'kept'), 'k');
    await fsp.mkdir(path.join(d, 'empty'));
    await fsp.rename(path.join(d, 'full'), path.join(d, 'empty'));
    assert.deepEqual(await fsp.readdir(path.join(d, 'empty')), ['kept']);
    await rejectsWith(fsp.stat(path.join(d, 'full')), 'ENOENT');

    // Across directories, and a file renamed onto itself through a hard link (a no-op).
    await fsp.mkdir(path.join(d, 'other'));
    await fsp.rename(path.join(d, 'dst'), path.join(d, 'other', 'moved'));
    await fsp.link(path.join(d, 'other', 'moved'), path.join(d, 'twin'));
    await fsp.rename(path.join(d, 'twin'), path.join(d, 'other', 'moved'));
    assert.equal(await fsp.readFile(path.join(d, 'twin'), 'utf8'), 'new');
  });

  it('a file renamed while open keeps its descriptor', async () => {
    const d = await ctx.fresh();
    await fsp.writeFile(path.join(d, 'a'), '12345');
    await withFile(path.join(d, 'a'), 'r+', async (h) => {
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      await h.write('X', 0);
      assert.equal((await h.stat()).size, 5);
    });
    assert.equal(await fsp.readFile(path.join(d, 'b'), 'utf8'), 'X2345');
  });

  it('directories: mkdir modes, rmdir, listing with types, FIFOs', async () => {
    const d = await ctx.fresh();
    await fsp.mkdir(path.join(d, 'sub'), { mode: 0o750 });
    assert.equal((await fsp.stat(path.join(d, 'sub'))).mode & 0o777, 0o750 & ~process.umask());
    assert.ok((await fsp.stat(path.join(d, 'sub'))).isDirectory());
    await fsp.writeFile(path.join(d, 'file'), '');
    await fsp.symlink('file', path.join(d, 'link'));
    await sh('mkfifo', [path.join(d, 'fifo')]);
    assert.ok((await fsp.lstat(path.join(d, 'fifo'))).isFIFO());
    const entries = await fsp.readdir(d, { withFileTypes: true });
    const kinds = Object.fromEntries(entries.map((e) => [e.name, e.isDirectory() ? 'dir' : e.isFile() ? 'file'
      : e.isSymbolicLink() ? 'link' : e.isFIFO() ? 'fifo' : 'other']));
    assert.deepEqual(kinds, { sub: 'dir', file: 'file', link: 'link', fifo: 'fifo' });
    // '.' and '..' are listed, with real inode numbers.
    const all = (await sh('ls', ['-ai', d])).trim().split('\n').map((l) => l.trim().split(/\s+/));
    const dot = all.find((f) => f[1] === '.');
    assert.equal(Number(dot?.[0]), (await fsp.stat(d)).ino);
    assert.ok(all.some((f) => f[1] === '..'));
    await fsp.rmdir(path.join(d, 'sub'));
    await rejectsWith(fsp.stat(path.join(d, 'sub')), 'ENOENT');
  });

  it('a directory of many entries lists completely, with types', async () => {
    const d = await ctx.fresh();
    const host = ctx.hostPath(d);
    const count = host === undefined ? BIG_DIR_MOUNT : BIG_DIR_HOST;
    const name = (i: number): string => `entry-${String(i).padStart(6, '0')}`;
    if (host !== undefined) {
      // Built on dom0's side, as hard links to a few files: a link costs no inode, so 100k entries take a second
      // or two rather than the tens of seconds 100k new files can take on a busy disk. The mount lists them.
      const sources = Array.from({ length: Math.ceil(count / LINKS_PER_FILE) }, (_, k) => path.join(host, `.src-${k}`));
      for (const src of sources) fs.writeFileSync(src, '');
      for (let i = 0; i < count; i++) fs.linkSync(sources[Math.floor(i / LINKS_PER_FILE)] as string, path.join(host, name(i)));
      for (const src of sources) fs.unlinkSync(src);
    } else {
      for (let i = 0; i < count; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, k) => fsp.writeFile(path.join(d, name(i + k)), '')));
      }
    }
    await fsp.mkdir(path.join(d, 'made-through-the-mount'));
    const entries = await fsp.readdir(d, { withFileTypes: true });
    assert.equal(entries.length, count + 1);
    const names = new Set(entries.map((e) => e.name));
    for (let i = 0; i < count; i++) assert.ok(names.has(name(i)), `${name(i)} missing from the listing`);
    assert.equal(entries.filter((e) => e.isFile()).length, count);
    assert.ok(entries.find((e) => e.name === 'made-through-the-mount')?.isDirectory());
    if (host !== undefined) fs.rmSync(host, { recursive: true });
  });
}

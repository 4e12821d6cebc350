// Every failure with the errno a local Linux filesystem gives, as root (which passes permission checks, so
// EACCES and EPERM come from the cases root cannot override).
import { it } from 'node:test';
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { rejectsWith, sh, shFails } from './expect.ts';
import type { PosixContext } from './posix-suite.ts';

export function errnoCases(ctx: PosixContext): void {
  it('ENOENT: missing files, parents and link targets', async () => {
    const d = await ctx.fresh();
    const missing = path.join(d, 'missing');
    await rejectsWith(fsp.stat(missing), 'ENOENT', 'stat');
    await rejectsWith(fsp.lstat(missing), 'ENOENT', 'lstat');
    await rejectsWith(fsp.open(missing, 'r'), 'ENOENT', 'open r');
    await rejectsWith(fsp.unlink(missing), 'ENOENT', 'unlink');
    await rejectsWith(fsp.rmdir(missing), 'ENOENT', 'rmdir');
    await rejectsWith(fsp.readlink(missing), 'ENOENT', 'readlink');
    await rejectsWith(fsp.rename(missing, path.join(d, 'x')), 'ENOENT', 'rename');
    await rejectsWith(fsp.link(missing, path.join(d, 'x')), 'ENOENT', 'link');
    await rejectsWith(fsp.mkdir(path.join(missing, 'sub')), 'ENOENT', 'mkdir in a missing parent');
    await rejectsWith(fsp.writeFile(path.join(missing, 'f'), 'x'), 'ENOENT', 'create in a missing parent');
    await fsp.symlink('nowhere', path.join(d, 'dangling'));
    await rejectsWith(fsp.stat(path.join(d, 'dangling')), 'ENOENT', 'stat of a dangling symlink');
    await rejectsWith(fsp.readFile(path.join(d, 'dangling')), 'ENOENT', 'open of a dangling symlink');
  });

  it('EEXIST: every way of making a name that is taken', async () => {
    const d = await ctx.fresh();
    const file = path.join(d, 'file');
    const dir = path.join(d, 'dir');
    await fsp.writeFile(file, 'x');
    await fsp.mkdir(dir);
    await rejectsWith(fsp.mkdir(dir), 'EEXIST', 'mkdir over a dir');
    await rejectsWith(fsp.mkdir(file), 'EEXIST', 'mkdir over a file');
    await rejectsWith(fsp.symlink('t', file), 'EEXIST', 'symlink');
    await rejectsWith(fsp.link(file, dir), 'EEXIST', 'link');
    await rejectsWith(fsp.open(file, 'wx'), 'EEXIST', 'open O_CREAT|O_EXCL');
    await rejectsWith(fsp.open(dir, 'wx'), 'EEXIST', 'open O_CREAT|O_EXCL of a dir');
    await shFails('mkfifo', [file]);
  });

  it('ENOTEMPTY, EISDIR, ENOTDIR', async () => {
    const d = await ctx.fresh();
    const dir = path.join(d, 'dir');
    const file = path.join(d, 'file');
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'inside'), 'x');
    await fsp.mkdir(path.join(d, 'other'));
    await fsp.writeFile(path.join(d, 'other', 'inside'), 'x');
    await fsp.writeFile(file, 'x');
    await rejectsWith(fsp.rmdir(dir), 'ENOTEMPTY', 'rmdir of a non-empty dir');
    await rejectsWith(fsp.rename(path.join(d, 'other'), dir), 'ENOTEMPTY', 'rename over a non-empty dir');
    await rejectsWith(fsp.open(dir, 'r+'), 'EISDIR', 'open a dir for writing');
    await rejectsWith(fsp.readFile(dir), 'EISDIR', 'read a dir');
    await rejectsWith(fsp.unlink(dir), 'EISDIR', 'unlink a dir');
    await rejectsWith(fsp.rename(file, dir), 'EISDIR', 'rename a file over a dir');
    await rejectsWith(fsp.truncate(dir, 0), 'EISDIR', 'truncate a dir');
    await rejectsWith(fsp.rename(dir, file), 'ENOTDIR', 'rename a dir over a file');
    await rejectsWith(fsp.rmdir(file), 'ENOTDIR', 'rmdir a file');
    await rejectsWith(fsp.mkdir(path.join(file, 'sub')), 'ENOTDIR', 'mkdir under a file');
    await rejectsWith(fsp.stat(path.join(file, 'sub')), 'ENOTDIR', 'stat under a file');
    await rejectsWith(fsp.readdir(file), 'ENOTDIR', 'readdir of a file');
  });

  it('ENAMETOOLONG past 255 bytes; 255 is fine', async () => {
    const d = await ctx.fresh();
    const ok = path.join(d, 'n'.repeat(255));
    const long = path.join(d, 'n'.repeat(256));
    await fsp.writeFile(ok, 'x');
    assert255((await fsp.readdir(d)).find((n) => n.startsWith('n')));
    await rejectsWith(fsp.writeFile(long, 'x'), 'ENAMETOOLONG', 'create');
    await rejectsWith(fsp.mkdir(long), 'ENAMETOOLONG', 'mkdir');
    await rejectsWith(fsp.stat(long), 'ENAMETOOLONG', 'stat');
    await rejectsWith(fsp.rename(ok, long), 'ENAMETOOLONG', 'rename');
    await rejectsWith(fsp.symlink('t', long), 'ENAMETOOLONG', 'symlink');
  });

  it('ELOOP: symlink cycles, and O_NOFOLLOW on a symlink', async () => {
    const d = await ctx.fresh();
    await fsp.symlink('b', path.join(d, 'a'));
    await fsp.symlink('a', path.join(d, 'b'));
    await rejectsWith(fsp.stat(path.join(d, 'a')), 'ELOOP', 'stat of a cycle');
    await rejectsWith(fsp.readFile(path.join(d, 'a')), 'ELOOP', 'open of a cycle');
    await rejectsWith(fsp.stat(path.join(d, 'a', 'x')), 'ELOOP', 'a cycle in the middle of a path');
    await fsp.writeFile(path.join(d, 'target'), 'x');
    await fsp.symlink('target', path.join(d, 'link'));
    await rejectsWith(fsp.open(path.join(d, 'link'), constants.O_RDONLY | constants.O_NOFOLLOW), 'ELOOP', 'O_NOFOLLOW');
  });

  it('EXDEV leaving the mount; EINVAL moving a dir under itself', async () => {
    const d = await ctx.fresh();
    const file = path.join(d, 'file');
    await fsp.writeFile(file, 'x');
    const outside = await fsp.mkdtemp(path.join(os.tmpdir(), 'xenfs-posix-'));
    try {
      await rejectsWith(fsp.rename(file, path.join(outside, 'f')), 'EXDEV', 'rename out of the mount');
      await rejectsWith(fsp.link(file, path.join(outside, 'f')), 'EXDEV', 'link out of the mount');
    } finally {
      await fsp.rm(outside, { recursive: true, force: true });
    }
    await fsp.mkdir(path.join(d, 'dir', 'sub'), { recursive: true });
    await rejectsWith(fsp.rename(path.join(d, 'dir'), path.join(d, 'dir', 'sub', 'x')), 'EINVAL', 'dir into itself');
    await rejectsWith(fsp.rmdir(`${d}/dir/.`), 'EINVAL', 'rmdir of .'); // not path.join: it drops the '.'
  });

  it('EPERM and EACCES that bind root: hard links to dirs, device nodes, exec without an x bit', async () => {
    const d = await ctx.fresh();
    await fsp.mkdir(path.join(d, 'dir'));
    await rejectsWith(fsp.link(path.join(d, 'dir'), path.join(d, 'dirlink')), 'EPERM', 'hard link to a dir');
    // dom0 never creates device nodes for a guest.
    const err = await shFails('mknod', [path.join(d, 'null'), 'c', '1', '3']);
    if (!/Operation not permitted/.test(err)) throw new Error(`mknod of a device: ${err}`);
    const script = path.join(d, 'script.sh');
    await fsp.writeFile(script, '#!/bin/sh\necho ran\n', { mode: 0o644 });
    await rejectsWith(promisify(execFile)(script), 'EACCES', 'exec of a 0644 file');
    await fsp.chmod(script, 0o755);
    if ((await sh(script, [])) !== 'ran\n') throw new Error('the script did not run');
  });
}

function assert255(name: string | undefined): void {
  if (name?.length !== 255) throw new Error(`a 255-byte name did not list back whole (${name?.length})`);
}

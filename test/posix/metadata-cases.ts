// Attributes: permissions, ownership, timestamps, extended attributes, filesystem statistics.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { py, rejectsWith, sh, shFails, withFile } from './expect.ts';
import type { PosixContext } from './posix-suite.ts';

const FUSE_SUPER_MAGIC = 0x65735546;

export function metadataCases(ctx: PosixContext): void {
  it('chmod sets permission and sticky bits; set-id bits only on directories (dom0 policy)', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await fsp.writeFile(p, '');
    for (const mode of [0o751, 0o1777, 0o000, 0o640]) {
      await fsp.chmod(p, mode);
      assert.equal((await fsp.stat(p)).mode & 0o7777, mode, `mode ${mode.toString(8)}`);
    }
    await withFile(p, 'r', (h) => h.chmod(0o600));
    assert.equal((await fsp.stat(p)).mode & 0o7777, 0o600);
    // dom0 never lets a guest make a set-id file (it would be set-id on the host too); setgid directories are
    // ordinary shared-group practice and pass.
    await fsp.chmod(p, 0o6755);
    assert.equal((await fsp.stat(p)).mode & 0o7777, 0o755);
    await fsp.chmod(d, 0o2775);
    assert.equal((await fsp.stat(d)).mode & 0o7777, 0o2775);
  });

  it('chown sets uid and gid; -1 keeps one; lchown never reaches the target', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await fsp.writeFile(p, '');
    await fsp.chown(p, 1234, 5678);
    let st = await fsp.stat(p);
    assert.deepEqual([st.uid, st.gid], [1234, 5678]);
    await fsp.chown(p, -1, 42);
    st = await fsp.stat(p);
    assert.deepEqual([st.uid, st.gid], [1234, 42]);
    await fsp.symlink('f', path.join(d, 'link'));
    if (ctx.symlinkMetadata()) {
      await fsp.lchown(path.join(d, 'link'), 1, 1);
      const link = await fsp.lstat(path.join(d, 'link'));
      assert.deepEqual([link.uid, link.gid], [1, 1]);
    } else {
      // GuestFs can only chown what a symlink points at; the mount refuses rather than change the target.
      await rejectsWith(fsp.lchown(path.join(d, 'link'), 1, 1), 'ENOTSUP', 'lchown of a symlink');
    }
    st = await fsp.stat(p);
    assert.deepEqual([st.uid, st.gid], [1234, 42]);
  });

  it('utimes sets atime and mtime independently, to the millisecond', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await fsp.writeFile(p, '');
    // Fractions exact in binary: Node hands utimensat seconds as a double, so .123 would arrive as .122999….
    const atime = new Date(1_000_000_000_500);
    const mtime = new Date(2_000_000_000_250);
    await fsp.utimes(p, atime, mtime);
    const st = await fsp.stat(p);
    assert.equal(st.atimeMs, atime.getTime());
    assert.equal(st.mtimeMs, mtime.getTime());
    await withFile(p, 'r+', (h) => h.utimes(new Date(5000), new Date(7000)));
    const st2 = await fsp.stat(p);
    assert.deepEqual([st2.atimeMs, st2.mtimeMs], [5000, 7000]);
    const host = ctx.hostPath(p);
    if (host !== undefined) assert.equal(fs.statSync(host).mtimeMs, 7000);
    // touch with no time: both become "now".
    const before = Date.now() - 2000;
    await sh('touch', [p]);
    assert.ok((await fsp.stat(p)).mtimeMs >= before);
    await fsp.symlink('f', path.join(d, 'link'));
    if (ctx.symlinkMetadata()) {
      const targetMtime = (await fsp.stat(p)).mtimeMs;
      await fsp.lutimes(path.join(d, 'link'), 3, 4);
      assert.deepEqual([(await fsp.lstat(path.join(d, 'link'))).mtimeMs, (await fsp.stat(p)).mtimeMs], [4000, targetMtime]);
    } else {
      await rejectsWith(fsp.lutimes(path.join(d, 'link'), 1, 1), 'ENOTSUP', 'lutimes of a symlink');
    }
  });

  it('a write moves mtime forward and a read of the same mount sees the new size at once', async () => {
    const p = path.join(await ctx.fresh(), 'f');
    await fsp.writeFile(p, 'x');
    await fsp.utimes(p, 1000, 1000);
    await fsp.appendFile(p, 'more');
    const st = await fsp.stat(p);
    assert.equal(st.size, 5);
    assert.ok(st.mtimeMs > 1_000_000, 'mtime did not move on write');
  });

  it('user.* xattrs: set, get, list, replace, remove, and the errors', async () => {
    const d = await ctx.fresh();
    const p = path.join(d, 'f');
    await fsp.writeFile(p, '');
    await sh('setfattr', ['-n', 'user.color', '-v', 'blue', p]);
    await sh('setfattr', ['-n', 'user.empty', p]);
    assert.equal(await sh('getfattr', ['--only-values', '-n', 'user.color', p]), 'blue');
    const dump = await sh('getfattr', ['-d', '--absolute-names', p]);
    assert.match(dump, /user\.color="blue"/);
    assert.match(dump, /user\.empty/);
    await sh('setfattr', ['-n', 'user.color', '-v', 'green', p]);
    assert.equal(await sh('getfattr', ['--only-values', '-n', 'user.color', p]), 'green');
    await sh('setfattr', ['-x', 'user.color', p]);
    assert.match(await shFails('getfattr', ['-n', 'user.color', p]), /No such attribute/);
    assert.match(await shFails('setfattr', ['-x', 'user.color', p]), /No such attribute/);
    // Directories carry them too.
    await sh('setfattr', ['-n', 'user.dir', '-v', 'yes', d]);
    assert.equal(await sh('getfattr', ['--only-values', '-n', 'user.dir', d]), 'yes');
  });

  it('xattr sizes and flags: values larger than the first buffer, XATTR_CREATE, XATTR_REPLACE', async () => {
    const p = path.join(await ctx.fresh(), 'f');
    await fsp.writeFile(p, '');
    // Python asks with a 128-byte buffer first and retries on ERANGE. (Sizes stay within one ext4 block.)
    const out = await py([
      'import os, sys, errno',
      'p = sys.argv[1]',
      "os.setxattr(p, 'user.big', b'v' * 1000)",
      "print(len(os.getxattr(p, 'user.big')))",
      "for i in range(20): os.setxattr(p, 'user.name%02d' % i, b'x')",
      'print(len(os.listxattr(p)))',
      'def code(f):',
      '    try: f(); return "ok"',
      '    except OSError as e: return errno.errorcode[e.errno]',
      "print(code(lambda: os.setxattr(p, 'user.big', b'1', os.XATTR_CREATE)))",
      "print(code(lambda: os.setxattr(p, 'user.none', b'1', os.XATTR_REPLACE)))",
      "print(code(lambda: os.setxattr(p, 'user.new', b'1', os.XATTR_CREATE)))",
      "print(code(lambda: os.getxattr(p, 'user.none')))",
      "print(code(lambda: os.removexattr(p, 'user.none')))",
    ].join('\n'), p);
    assert.deepEqual(out.trim().split('\n'), ['1000', '21', 'EEXIST', 'ENODATA', 'ok', 'ENODATA', 'ENODATA']);
  });

  it('statfs reports the export filesystem', async () => {
    const d = await ctx.fresh();
    const s = await fsp.statfs(d);
    assert.equal(s.type, FUSE_SUPER_MAGIC);
    assert.ok(s.bsize > 0 && s.blocks > 0, JSON.stringify(s));
    assert.ok(s.bfree <= s.blocks && s.bavail <= s.bfree, JSON.stringify(s));
    assert.ok(s.files > 0 && s.ffree <= s.files, JSON.stringify(s));
    const host = ctx.hostPath(d);
    if (host !== undefined) {
      const h = fs.statfsSync(host);
      assert.equal(s.blocks * s.bsize, h.blocks * h.bsize);
      assert.equal(s.files, h.files);
    }
  });
}

// The fuse-native front end with no ring and no dom0 behind it: a passthrough of BASE at MOUNTDIR, mounted with
// exactly the options of a XenFS guest mount in its default mode (direct I/O, nothing cached), answering every
// call with a synchronous syscall on BASE from its one JavaScript thread. bench:fs measures it beside XenFS: what
// this front end does when the work is local. (Not a strict ceiling: XenFS hands the syscalls to dom0's thread,
// so the JavaScript thread of a guest mount has less to do per call.)
// Usage (as its own process; bench/fs-peers.ts starts it): node --import tsx bench/fuse-native-passthrough.ts BASE MOUNTDIR
import fs from 'node:fs';
import path from 'node:path';
import type Fuse from 'fuse-native';
import { mountOptions } from '../core/frontend/fuse-mount.ts';
import { PatchedFuse } from '../core/frontend/fuse-native-fixes.ts';

const [base, mountDir] = process.argv.slice(2);
if (base === undefined || mountDir === undefined) {
  process.stderr.write('usage: fuse-native-passthrough BASE MOUNTDIR\n');
  process.exit(2);
}

const at = (p: string): string => path.join(base, p);
const stat = (s: fs.Stats): Fuse.Stat => ({
  mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, ino: s.ino, rdev: s.rdev,
  blksize: s.blksize, blocks: s.blocks, atime: s.atimeMs, mtime: s.mtimeMs, ctime: s.ctimeMs,
});
const EIO = -5;
// Node's errno values are negative already (-2 for ENOENT), which is what a FUSE reply carries.
const fail = (err: unknown): number => {
  const e = (err as NodeJS.ErrnoException).errno;
  return typeof e === 'number' && e < 0 ? e : EIO;
};
const done = (cb: Fuse.Done, work: () => void): void => {
  try {
    work();
    cb(0);
  } catch (err) {
    cb(fail(err));
  }
};
const value = <T>(cb: Fuse.Reply<T>, work: () => T): void => {
  let v: T;
  try {
    v = work();
  } catch (err) {
    cb(fail(err));
    return;
  }
  cb(0, v);
};
const count = (cb: Fuse.Done, work: () => number): void => {
  try {
    cb(work());
  } catch (err) {
    cb(fail(err));
  }
};

const ops: Fuse.Operations = {
  init: (cb) => cb(0),
  getattr: (p, cb) => value(cb, () => stat(fs.lstatSync(at(p)))),
  fgetattr: (p, fd, cb) => value(cb, () => stat(fd === 0 ? fs.lstatSync(at(p)) : fs.fstatSync(fd))),
  access: (p, mode, cb) => done(cb, () => fs.accessSync(at(p), mode)),
  chmod: (p, mode, cb) => done(cb, () => fs.chmodSync(at(p), mode)),
  truncate: (p, size, cb) => done(cb, () => fs.truncateSync(at(p), size)),
  ftruncate: (_p, fd, size, cb) => done(cb, () => fs.ftruncateSync(fd, size)),
  utimens: (p, atime, mtime, cb) => done(cb, () => fs.utimesSync(at(p), new Date(atime), new Date(mtime))),
  // The descriptor on BASE is the handle libfuse echoes back.
  open: (p, flags, cb) => value(cb, () => fs.openSync(at(p), flags & ~fs.constants.O_CREAT)),
  read: (_p, fd, buf, len, pos, cb) => count(cb, () => fs.readSync(fd, buf, 0, len, pos)),
  write: (_p, fd, buf, len, pos, cb) => count(cb, () => fs.writeSync(fd, buf, 0, len, pos)),
  flush: (_p, _fd, cb) => cb(0),
  fsync: (_p, _datasync, fd, cb) => done(cb, () => fs.fsyncSync(fd)),
  release: (_p, fd, cb) => done(cb, () => fs.closeSync(fd)),
  opendir: (_p, _flags, cb) => cb(0, 0),
  readdir: (p, cb) => value(cb, () => ['.', '..', ...fs.readdirSync(at(p))]),
  releasedir: (_p, _fd, cb) => cb(0),
  mkdir: (p, mode, cb) => done(cb, () => fs.mkdirSync(at(p), { mode })),
  rmdir: (p, cb) => done(cb, () => fs.rmdirSync(at(p))),
  // Regular files only (what the benchmark creates): Node has no mknod.
  mknod: (p, mode, _dev, cb) => done(cb, () => fs.closeSync(fs.openSync(at(p), 'wx', mode & 0o7777))),
  unlink: (p, cb) => done(cb, () => fs.unlinkSync(at(p))),
  rename: (src, dest, cb) => done(cb, () => fs.renameSync(at(src), at(dest))),
  statfs: (_p, cb) => value(cb, () => {
    const s = fs.statfsSync(base);
    return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files,
      ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 };
  }),
};

const fuse = new PatchedFuse(path.resolve(mountDir), ops, { force: true, mkdir: true, timeout: false },
  mountOptions('fuse-native-passthrough', { cache: 'none' }));
await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
process.stdout.write(`${JSON.stringify({ type: 'ready', mount: path.resolve(mountDir), pid: process.pid })}\n`);
const stop = (): void => fuse.unmount(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

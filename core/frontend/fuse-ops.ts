// The FUSE operation table of a guest mount: each libfuse2 call (through fuse-native) becomes GuestFs calls on
// the export, and each failure the errno the kernel hands the application — an ErrnoError's own errno, EIO when
// dom0 is gone (DisconnectedError), EIO and a log line for anything else (a bug of ours).
//
// What libfuse2 and fuse-native decide for us, and how it is handled:
// - `create` is left out on purpose. fuse-native passes it no open flags, so O_EXCL, O_APPEND and the access
//   mode of an open(O_CREAT) that creates the file would be guesses. Without it the kernel answers
//   open(O_CREAT) with MKNOD (exclusive on dom0: O_EXCL holds) followed by an ordinary OPEN that carries the
//   real flags (O_APPEND reaches dom0, which then appends at the true end of file even while other guests
//   write). The price is one more round trip per file created, and one difference: a plain open(O_CREAT) that
//   races another guest creating the same name fails with EEXIST instead of opening its file.
// - O_TRUNC on an existing file reaches us as truncate(path, 0) before or with OPEN; both work.
// - Paths are absolute in the mount and already resolved by the kernel, symlinks included, so opens never
//   follow a final symlink here. GuestFs's chown, utimes and xattr calls do follow one; the kernel sends them
//   for a symlink itself only for lchown, utimensat(AT_SYMLINK_NOFOLLOW) and l*xattr, which are answered here
//   without touching the link's target (see `notSymlink`).
// - rename has no flags: libfuse2 speaks FUSE 7.19, and the kernel refuses renameat2 flags below 7.23 (EINVAL).
// - Timestamps are milliseconds (fuse-native carries no more). libfuse2 calls utimens only when atime and mtime
//   are both being set (fuse-native does not declare utime_omit_ok): utimensat with UTIME_OMIT for one of them
//   (`touch -a`, `touch -m`) returns success without reaching us, and changes nothing.
// - Open files that are unlinked stay on dom0 as `.fuse_hidden*` until released (libfuse2's hard_remove is off:
//   with it, reads of such files would fail ENOENT, as fuse-native cannot take null paths).
import type Fuse from 'fuse-native';
import { DisconnectedError, ErrnoError, errno } from '../errors.ts';
import type { Logger } from '../util/log.ts';
import { AccessMask, OpenFlag } from '../protocol/opcodes.ts';
import type { GuestFileHandle } from './file-handle.ts';
import type { HandleTable } from './fuse-handles.ts';
import type { GuestFs } from './guest-fs.ts';
import type { StatFs, Stats } from './stats.ts';

const EIO = errno('EIO');
const EBADF = errno('EBADF');
const ENODATA = errno('ENODATA');
const EPERM = errno('EPERM');
const EOPNOTSUPP = errno('EOPNOTSUPP');
const U32_MAX = 0xffff_ffff;
const S_IFDIR = 0o040000;

// Open flags worth carrying to dom0. O_DIRECT is the guest's wish to bypass its own page cache, which this mount
// already does; passed on, it would bypass dom0's shared cache and impose O_DIRECT alignment on dom0's I/O.
// O_NONBLOCK, O_NOCTTY, O_LARGEFILE and O_CLOEXEC mean nothing for a regular file on dom0.
const PASSED_OPEN_FLAGS = OpenFlag.O_ACCMODE | OpenFlag.O_APPEND | OpenFlag.O_TRUNC | OpenFlag.O_SYNC
  | OpenFlag.O_DSYNC | 0o1000000 /* O_NOATIME */;

/** A failure as the negative errno a FUSE reply carries. */
export function fuseErrno(err: unknown, op: string, path: string, logger: Logger): number {
  if (err instanceof ErrnoError) return -err.errno;
  if (err instanceof DisconnectedError) return -EIO;
  logger.log('error', 'fuse operation failed unexpectedly', {
    op, path, error: err instanceof Error ? err.stack ?? err.message : String(err),
  });
  return -EIO;
}

/** GuestFs Stats as fuse-native's stat object. Times to the millisecond: fuse-native carries no more. */
export function toFuseStat(s: Stats): Fuse.Stat {
  return {
    mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, ino: s.ino, rdev: s.rdev,
    blksize: s.blksize, blocks: s.blocks, atime: s.atimeMs, mtime: s.mtimeMs, ctime: s.ctimeMs,
  };
}

/**
 * statfs in u32 fields (fuse-native's statvfs array): block counts past 2^32 are scaled into larger fragments
 * so `df` still multiplies out to the right size; inode counts saturate.
 */
export function toFuseStatfs(s: StatFs): Fuse.StatFs {
  let { blocks, bfree, bavail } = s;
  let frsize = s.frsize > 0 ? s.frsize : s.bsize;
  while (blocks > U32_MAX && frsize <= U32_MAX / 2) {
    blocks = Math.floor(blocks / 2);
    bfree = Math.floor(bfree / 2);
    bavail = Math.floor(bavail / 2);
    frsize *= 2;
  }
  const u32 = (n: number): number => Math.min(n, U32_MAX);
  return {
    bsize: u32(s.bsize), frsize, blocks: u32(blocks), bfree: u32(bfree), bavail: u32(bavail), files: u32(s.files),
    ffree: u32(s.ffree), favail: u32(s.ffree), fsid: 0, flag: 0, namemax: s.namelen,
  };
}

/** The operation table for one export. Open files live in `handles`, keyed by the fh libfuse echoes back. */
export function fuseOperations(
  fs: GuestFs, handles: HandleTable<GuestFileHandle>, logger: Logger,
): Fuse.Operations {
  // Every op runs as one async function whose outcome goes back to libfuse exactly once, as a number:
  // fuse-native.c reads the answer as an int32, and anything else would throw inside its signal.
  const answer = <T>(op: string, path: string, work: () => Promise<T>, reply: (value: T) => void,
    fail: (code: number) => void): void => {
    work().then(reply, (err: unknown) => fail(fuseErrno(err, op, path, logger)));
  };
  const done = (op: string, path: string, cb: Fuse.Done, work: () => Promise<unknown>): void =>
    answer(op, path, work, () => cb(0), cb);
  const value = <T>(op: string, path: string, cb: Fuse.Reply<T>, work: () => Promise<T>): void =>
    answer(op, path, work, (v) => cb(0, v), (code) => cb(code));
  const count = (op: string, path: string, cb: Fuse.Done, work: () => Promise<number>): void =>
    answer(op, path, work, cb, cb);

  const handle = (fd: number, op: string, path: string): GuestFileHandle => {
    const h = handles.get(fd);
    if (h === undefined) throw new ErrnoError(EBADF, '', path, { syscall: op });
    return h;
  };
  // The kernel reaches a symlink itself only for the no-follow variants, which GuestFs cannot express: answer
  // `symlinkErrno` rather than act on the link's target. Costs one WALK.
  const notSymlink = async (path: string, op: string, symlinkErrno: number): Promise<void> => {
    if ((await fs.lstat(path)).isSymbolicLink()) throw new ErrnoError(symlinkErrno, '', path, { syscall: op });
  };

  return {
    init: (cb) => cb(0),

    // --- attributes --------------------------------------------------------------------------------------
    getattr: (path, cb) => value('getattr', path, cb, async () => toFuseStat(await fs.lstat(path))),
    fgetattr: (path, fd, cb) => value('fgetattr', path, cb, async () => toFuseStat(
      fd === 0 ? await fs.lstat(path) : await handle(fd, 'fgetattr', path).stat())),
    access: (path, mode, cb) => done('access', path, cb, () => fs.access(path, mode)),
    statfs: (path, cb) => value('statfs', path, cb, async () => toFuseStatfs(await fs.statfs(path))),
    chmod: (path, mode, cb) => done('chmod', path, cb, () => fs.chmod(path, mode & 0o7777)),
    chown: (path, uid, gid, cb) => done('chown', path, cb, async () => {
      await notSymlink(path, 'lchown', EOPNOTSUPP);
      // (uid_t)-1 leaves that id as it is.
      await fs.chown(path, uid === U32_MAX ? -1 : uid, gid === U32_MAX ? -1 : gid);
    }),
    utimens: (path, atime, mtime, cb) => done('utimens', path, cb, async () => {
      await notSymlink(path, 'utimensat', EOPNOTSUPP);
      await fs.utimes(path, new Date(atime), new Date(mtime));
    }),
    truncate: (path, size, cb) => done('truncate', path, cb, () => fs.truncate(path, size)),
    ftruncate: (path, fd, size, cb) => done('ftruncate', path, cb, () => handle(fd, 'ftruncate', path).truncate(size)),

    // --- files -------------------------------------------------------------------------------------------
    open: (path, flags, cb) => value('open', path, cb, async () => {
      const h = await fs.open(path, (flags & PASSED_OPEN_FLAGS) | OpenFlag.O_NOFOLLOW);
      return handles.add(h);
    }),
    read: (path, fd, buffer, length, position, cb) => count('read', path, cb, async () =>
      (await handle(fd, 'read', path).read(buffer, 0, length, position)).bytesRead),
    // An O_APPEND handle writes at dom0's end of file whatever `position` the kernel computed from its own idea
    // of the size, which another guest may have outdated.
    write: (path, fd, buffer, length, position, cb) => count('write', path, cb, async () =>
      (await handle(fd, 'write', path).write(buffer, 0, length, position)).bytesWritten),
    // Writes are write-through (each returns once dom0 has written), so a close has nothing deferred to report;
    // the handle's own FLUSH goes with its RELEASE.
    flush: (path, fd, cb) => done('flush', path, cb, async () => void handle(fd, 'flush', path)),
    fsync: (path, datasync, fd, cb) => done('fsync', path, cb, () => {
      const h = handle(fd, 'fsync', path);
      return datasync !== 0 ? h.datasync() : h.sync();
    }),
    release: (path, fd, cb) => done('release', path, cb, async () => {
      await handles.remove(fd)?.close();
    }),

    // --- directories -------------------------------------------------------------------------------------
    // fuse-native gives readdir a path, never a handle, so opendir only checks that the listing is allowed.
    opendir: (path, _flags, cb) => value('opendir', path, cb, async () => {
      await fs.access(path, AccessMask.R_OK);
      return 0;
    }),
    readdir: (path, cb) => {
      answer('readdir', path, () => listing(fs, path), ({ names, stats }) => cb(0, names, stats), (code) => cb(code));
    },
    releasedir: (_path, _fd, cb) => cb(0),
    // Directory entries are changed by dom0 syscalls that have returned before their reply; the protocol has no
    // directory fsync, and an error here would only break applications that sync directories.
    fsyncdir: (_path, _datasync, _fd, cb) => cb(0),
    mkdir: (path, mode, cb) => done('mkdir', path, cb, () => fs.mkdir(path, { mode: mode & 0o7777 })),
    rmdir: (path, cb) => done('rmdir', path, cb, () => fs.rmdir(path)),

    // --- names -------------------------------------------------------------------------------------------
    mknod: (path, mode, dev, cb) => done('mknod', path, cb, () => fs.mknod(path, mode, dev)),
    unlink: (path, cb) => done('unlink', path, cb, () => fs.unlink(path)),
    rename: (src, dest, cb) => done('rename', src, cb, () => fs.rename(src, dest)),
    link: (src, dest, cb) => done('link', src, cb, () => fs.link(src, dest)),
    symlink: (target, path, cb) => done('symlink', path, cb, () => fs.symlink(target, path)),
    readlink: (path, cb) => value('readlink', path, cb, () => fs.readlink(path)),

    // --- extended attributes -----------------------------------------------------------------------------
    // A symlink has no user.* attributes on Linux, and setting one is EPERM.
    getxattr: (path, name, _position, cb) => value('getxattr', path, cb, async () => {
      await notSymlink(path, 'lgetxattr', ENODATA);
      return fs.getxattr(path, name);
    }),
    listxattr: (path, cb) => value('listxattr', path, cb, async () =>
      ((await fs.lstat(path)).isSymbolicLink() ? [] : fs.listxattr(path))),
    setxattr: (path, name, data, _position, flags, cb) => done('setxattr', path, cb, async () => {
      await notSymlink(path, 'lsetxattr', EPERM);
      await fs.setxattr(path, name, data, { create: (flags & 1) !== 0, replace: (flags & 2) !== 0 });
    }),
    removexattr: (path, name, cb) => done('removexattr', path, cb, async () => {
      await notSymlink(path, 'lremovexattr', ENODATA);
      await fs.removexattr(path, name);
    }),
  };
}

/**
 * A whole directory for fuse-native's readdir, '.' and '..' first (POSIX readdir returns them; libfuse2 does
 * not add them). Each entry carries its inode number and type (d_ino, d_type); the stats are otherwise empty.
 */
async function listing(fs: GuestFs, path: string): Promise<{ names: string[]; stats: Fuse.Stat[] }> {
  const parent = path.replace(/\/[^/]*\/?$/, '') || '/';
  const [self, up] = await Promise.all([fs.lstat(path), fs.lstat(parent)]);
  const names = ['.', '..'];
  const stats = [dirent(self.ino, S_IFDIR), dirent(up.ino, S_IFDIR)];
  for await (const entry of fs.readdirEntries(path)) {
    names.push(entry.name);
    // DT_* is the S_IFMT type shifted right by 12 (DT_UNKNOWN 0 stays 0).
    stats.push(dirent(entry.ino, entry.type << 12));
  }
  return { names, stats };
}

function dirent(ino: number, mode: number): Fuse.Stat {
  return { mode, ino, uid: 0, gid: 0, size: 0, nlink: 1, rdev: 0, blksize: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0 };
}

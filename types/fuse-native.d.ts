// Types for fuse-native 2.2.6 (index.js + fuse-native.c), which ships none. Only what XenFS uses is declared,
// as the module actually behaves — not as its README says (see core/frontend/fuse-native-fixes.ts for where the
// two differ). Numbers handed to callbacks are 0 for success or a negative errno; read and write answer with a
// byte count instead.
declare module 'fuse-native' {
  namespace Fuse {
    /** 0, or a negative errno (-2 for ENOENT). */
    type Done = (result: number) => void;
    type Reply<T> = (result: number, value?: T) => void;

    /** What getattr answers. Times are Dates or milliseconds since the epoch (the C side keeps milliseconds). */
    interface Stat {
      mode: number;
      uid: number;
      gid: number;
      /** Up to 2^53 bytes. */
      size: number;
      dev?: number;
      nlink: number;
      /** Truncated to 32 bits by fuse-native's stat array. */
      ino: number;
      rdev: number;
      blksize: number;
      blocks: number;
      atime: Date | number;
      mtime: Date | number;
      ctime: Date | number;
    }

    /** What statfs answers. Every field is a u32 on the way to C (fuse-native's Uint32Array). */
    interface StatFs {
      bsize: number;
      frsize: number;
      blocks: number;
      bfree: number;
      bavail: number;
      files: number;
      ffree: number;
      favail: number;
      fsid: number;
      flag: number;
      namemax: number;
    }

    /**
     * The operations fuse-native dispatches, one JS callback per libfuse2 high-level call. Paths are absolute
     * within the mount ('/' is its root). Buffers handed to read, write, setxattr are libfuse's own memory: valid
     * only until the callback is called.
     */
    interface Operations {
      init?(cb: Done): void;
      error?(cb: Done): void;
      access?(path: string, mode: number, cb: Done): void;
      statfs?(path: string, cb: Reply<StatFs>): void;
      getattr?(path: string, cb: Reply<Stat>): void;
      fgetattr?(path: string, fd: number, cb: Reply<Stat>): void;
      flush?(path: string, fd: number, cb: Done): void;
      fsync?(path: string, datasync: number, fd: number, cb: Done): void;
      fsyncdir?(path: string, datasync: number, fd: number, cb: Done): void;
      /** The whole directory in one answer: names, and optionally a Stat per name (for d_type and d_ino). */
      readdir?(path: string, cb: (result: number, names?: string[], stats?: Stat[]) => void): void;
      truncate?(path: string, size: number, cb: Done): void;
      ftruncate?(path: string, fd: number, size: number, cb: Done): void;
      /** Milliseconds since the epoch. */
      utimens?(path: string, atime: number, mtime: number, cb: Done): void;
      readlink?(path: string, cb: Reply<string>): void;
      chown?(path: string, uid: number, gid: number, cb: Done): void;
      chmod?(path: string, mode: number, cb: Done): void;
      mknod?(path: string, mode: number, dev: number, cb: Done): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
      getxattr?(path: string, name: string, position: number, cb: Reply<Buffer>): void;
      listxattr?(path: string, cb: Reply<string[]>): void;
      removexattr?(path: string, name: string, cb: Done): void;
      /** The answer is the `fh` libfuse hands back to later calls on this open file (0: none). */
      open?(path: string, flags: number, cb: Reply<number>): void;
      opendir?(path: string, flags: number, cb: Reply<number>): void;
      /** `position` is a number (exact up to 2^53). Answer with the byte count, or a negative errno. */
      read?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: Done): void;
      write?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: Done): void;
      release?(path: string, fd: number, cb: Done): void;
      releasedir?(path: string, fd: number, cb: Done): void;
      /** No open flags reach this call (fuse-native drops fi->flags). */
      create?(path: string, mode: number, cb: Reply<number>): void;
      unlink?(path: string, cb: Done): void;
      rename?(src: string, dest: string, cb: Done): void;
      /** `src` is the existing file. */
      link?(src: string, dest: string, cb: Done): void;
      /** `src` is the link's target text, `dest` the new link. */
      symlink?(src: string, dest: string, cb: Done): void;
      mkdir?(path: string, mode: number, cb: Done): void;
      rmdir?(path: string, cb: Done): void;
    }

    interface Options {
      /** Milliseconds before a call is answered with ETIMEDOUT; false for never. Default 15000. */
      timeout?: number | false;
      /** Unmount a dead mount (ENOTCONN) found at the mount point first. */
      force?: boolean;
      /** Create the mount point if it is missing. */
      mkdir?: boolean;
      debug?: boolean;
      fsname?: string;
    }

    /** The callback fuse-native's `_op_*` methods answer through (bound to the calling FUSE thread). */
    type Signal = (result: number, ...values: unknown[]) => void;

    /**
     * One entry of `_handlers`, called by C as (thread locals, opcode, ...the op's arguments). The thread locals
     * buffer is the calling thread's `fuse_thread_locals_t`.
     */
    type NativeHandler = (locals: Buffer, opcode: number, ...args: unknown[]) => unknown;
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
    readonly mnt: string;
    readonly ops: Fuse.Operations;
    /** Calls back once libfuse has called init, i.e. the mount is live. */
    mount(cb: (err: Error | null) => void): void;
    /** `fusermount -uz` (a lazy unmount), then releases the native side. */
    unmount(cb: (err: (Error & { unmountFailure?: boolean }) | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;

    // Internals of 2.2.6 that core/frontend/fuse-native-fixes.ts overrides, with the shapes they have there.
    protected _handlers: Array<Fuse.NativeHandler | undefined>;
    protected _fuseOptions(): string;
    protected _op_fgetattr(signal: Fuse.Signal, path: string, fd: number): void;
    protected _op_getxattr(signal: Fuse.Signal, path: string, name: string, value: Buffer, position: number): void;
    protected _op_listxattr(signal: Fuse.Signal, path: string, list: Buffer): void;
  }

  export = Fuse;
}

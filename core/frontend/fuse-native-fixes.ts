// fuse-native 2.2.6 with the defects that matter to XenFS worked around, all in this one subclass so the op
// table (fuse-ops.ts) can be written against the behaviour fuse-native documents. fuse-native is unmaintained
// and pinned; each override names the defect it covers and leans only on 2.2.6's own code (index.js and
// fuse-native.c). Everything not overridden here is fuse-native's own.
import Fuse from 'fuse-native';
import { errno } from '../errors.ts';

const ERANGE = errno('ERANGE');
const ENODATA = errno('ENODATA');

// utimens in fuse-native.c hands JS l->atime twice (FUSE_UINT64_TO_INTS_ARGV(l->atime, 5) where l->mtime was
// meant), so every mtime a guest sets would silently become its atime. The true mtime is still in the calling
// thread's fuse_thread_locals_t, which fuse-native allocates as a JS Buffer (Fuse#_malloc) and passes to each
// handler first. On x86-64 Linux that struct is 360 bytes with `size_t atime` at 104 and `size_t mtime` at 112
// (milliseconds). The read is trusted only when the struct has that size and its atime field equals the atime
// fuse-native passed; otherwise fuse-native's (wrong) mtime stands.
const OP_UTIMENS = 12; // fuse-native.c: op_utimens, the index of its handler in Fuse#_handlers
const LOCALS_SIZE = 360;
const LOCALS_ATIME = 104;
const LOCALS_MTIME = 112;
const TWO_32 = 2 ** 32;

/** The mtime words utimens should have received, or null when the thread-locals layout is not the known one. */
export function trueMtimeWords(locals: Buffer, atimeLow: number, atimeHigh: number): [number, number] | null {
  if (locals.length !== LOCALS_SIZE) return null;
  const atime = locals.readBigUInt64LE(LOCALS_ATIME);
  if (atime !== BigInt(atimeLow) + BigInt(atimeHigh) * BigInt(TWO_32)) return null;
  return [locals.readUInt32LE(LOCALS_MTIME), locals.readUInt32LE(LOCALS_MTIME + 4)];
}

/**
 * A fuse-native mount whose `-o` string is exactly `mountOptions` (see `_fuseOptions`), whose utimens gets the
 * mtime the caller set, and whose fgetattr, getxattr and listxattr call `ops` as fuse-native documents them.
 */
export class PatchedFuse extends Fuse {
  readonly #mountOptions: string;

  constructor(mnt: string, ops: Fuse.Operations, opts: Fuse.Options, mountOptions: readonly string[]) {
    super(mnt, ops, opts);
    this.#mountOptions = mountOptions.join(',');
    const utimens = this._handlers[OP_UTIMENS];
    if (utimens !== undefined) {
      this._handlers[OP_UTIMENS] = (locals, opcode, ...args) => {
        const [path, aLow, aHigh] = args;
        if (typeof aLow !== 'number' || typeof aHigh !== 'number') return utimens(locals, opcode, ...args);
        const mtime = trueMtimeWords(locals, aLow, aHigh);
        return mtime === null ? utimens(locals, opcode, ...args) : utimens(locals, opcode, path, aLow, aHigh, ...mtime);
      };
    }
  }

  // fuse-native builds `-o` from a fixed table of keys that has no direct_io, big_writes, max_write, use_ino or
  // negative_timeout, and drops any key whose value is falsy (attr_timeout=0 cannot be said). Its only other
  // way in is a comma inside a value it does not escape (fsname: 'x,direct_io'), which works by accident. This
  // method is what turns its options into the single `-o` argument libfuse parses, so overriding it hands
  // libfuse exactly our list, and nothing of fuse-native's key table applies.
  protected override _fuseOptions(): string {
    return this.#mountOptions.length > 0 ? `-o${this.#mountOptions}` : '';
  }

  // index.js registers fgetattr when ops.fgetattr exists, then calls ops.getattr(path) instead: stat of an open
  // file would follow the path, not the file (wrong after a rename by another guest).
  protected override _op_fgetattr(signal: Fuse.Signal, path: string, fd: number): void {
    const fgetattr = this.ops.fgetattr;
    if (!fgetattr) return super._op_fgetattr(signal, path, fd);
    fgetattr(path, fd, (result, stat) => {
      if (result !== 0 || stat === undefined) signal(result === 0 ? -errno('EIO') : result);
      else signal(0, statArray(stat));
    });
  }

  // index.js copies the value into libfuse's buffer whatever its size and reports the full length: a value
  // longer than the caller's buffer overruns libfuse's reply (the kernel then fails the call) instead of ERANGE.
  protected override _op_getxattr(
    signal: Fuse.Signal, path: string, name: string, value: Buffer, position: number,
  ): void {
    const getxattr = this.ops.getxattr;
    if (!getxattr) return super._op_getxattr(signal, path, name, value, position);
    getxattr(path, name, position, (result, data) => {
      // The ArrayBuffer goes back with every answer: fuse-native.c detaches it so nothing in JS can touch
      // libfuse's memory afterwards.
      if (result !== 0) return signal(result, value.buffer);
      if (data === undefined) return signal(-ENODATA, value.buffer);
      if (value.length === 0) return signal(data.length, value.buffer); // a size query
      if (data.length > value.length) return signal(-ERANGE, value.buffer);
      data.copy(value);
      return signal(data.length, value.buffer);
    });
  }

  // Same overrun as getxattr, and the size query answers 128 bytes more than the list needs (for macOS).
  protected override _op_listxattr(signal: Fuse.Signal, path: string, list: Buffer): void {
    const listxattr = this.ops.listxattr;
    if (!listxattr) return super._op_listxattr(signal, path, list);
    listxattr(path, (result, names) => {
      if (result !== 0 || names === undefined) return signal(result, list.buffer);
      const packed = Buffer.concat(names.map((n) => Buffer.from(`${n}\0`, 'utf8')));
      if (list.length === 0) return signal(packed.length, list.buffer);
      if (packed.length > list.length) return signal(-ERANGE, list.buffer);
      packed.copy(list);
      return signal(packed.length, list.buffer);
    });
  }
}

// index.js's getStatArray, which it does not export: the Uint32Array layout populate_stat() reads in C.
function statArray(st: Fuse.Stat): Uint32Array {
  const ints = new Uint32Array(18);
  const put64 = (i: number, n: number): void => {
    ints[i] = n % TWO_32;
    ints[i + 1] = Math.floor(n / TWO_32);
  };
  const ms = (t: Date | number): number => Math.floor(typeof t === 'number' ? t : t.getTime());
  ints[0] = st.mode;
  ints[1] = st.uid;
  ints[2] = st.gid;
  put64(3, st.size);
  ints[5] = st.dev ?? 0;
  ints[6] = st.nlink;
  ints[7] = st.ino;
  ints[8] = st.rdev;
  ints[9] = st.blksize;
  put64(10, st.blocks);
  put64(12, ms(st.atime));
  put64(14, ms(st.mtime));
  put64(16, ms(st.ctime));
  return ints;
}

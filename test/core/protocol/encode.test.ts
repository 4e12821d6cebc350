import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrnoError, LimitError, errno } from '../../../core/errors.ts';
import { decodeRequest } from '../../../core/protocol/decode.ts';
import { type RequestSpec, encodeRequest } from '../../../core/protocol/encode.ts';
import { INLINE_CAPACITY, MAX_DATA, ReqOff, SLOT_SIZE } from '../../../core/protocol/layout.ts';
import { splitPath, validateName, validatePath, validateTarget } from '../../../core/protocol/names.ts';
import { LockFlag, LockType, Op, OpenFlag, RELEASE_FLOCK_UNLOCK, RenameFlag, RequestFlag, SetattrValid, XattrFlag,
} from '../../../core/protocol/opcodes.ts';
import { decodeSetattr, encodeSetattr } from '../../../core/protocol/setattr.ts';
import { encodeLock } from '../../../core/protocol/lock.ts';

const setattr = encodeSetattr({ mode: 0o644, size: 12, mtime: { sec: 1_700_000_000, nsec: 5 }, atime: 'now' });

// One representative request per operation; the round-trip test below walks them all.
const SAMPLES: Record<keyof typeof Op, RequestSpec> = {
  LOOKUP: { op: Op.LOOKUP, node: 1, name1: 'file.txt' },
  FORGET: { op: Op.FORGET, node: 7, arg64: 3 },
  GETATTR: { op: Op.GETATTR, node: 7, fh: 0 },
  SETATTR: { op: Op.SETATTR, node: 7, arg32a: setattr.valid, arg64: setattr.size, data: setattr.payload },
  READLINK: { op: Op.READLINK, node: 9, len: 4096 },
  OPEN: { op: Op.OPEN, node: 9, arg32a: OpenFlag.O_RDWR },
  CREATE: { op: Op.CREATE, node: 1, name1: 'new', arg32a: OpenFlag.O_CREAT | OpenFlag.O_WRONLY, arg32b: 0o644 },
  READ: { op: Op.READ, fh: 0xdead_beef_cafe_f00dn, offset: 2n ** 40n, len: MAX_DATA },
  WRITE: { op: Op.WRITE, fh: 5, offset: 100, data: Buffer.from('hello') },
  FLUSH: { op: Op.FLUSH, fh: 5, arg64: 0xfeed_f00d_dead_beefn },
  FSYNC: { op: Op.FSYNC, fh: 5, arg32a: 1 },
  RELEASE: { op: Op.RELEASE, fh: 5, arg64: 77, arg32a: RELEASE_FLOCK_UNLOCK },
  OPENDIR: { op: Op.OPENDIR, node: 1 },
  READDIR: { op: Op.READDIR, fh: 6, offset: 42n, len: 65536 },
  MKDIR: { op: Op.MKDIR, node: 1, name1: 'dir', arg32a: 0o755 },
  UNLINK: { op: Op.UNLINK, node: 1, name1: 'gone' },
  RMDIR: { op: Op.RMDIR, node: 1, name1: 'gone-dir' },
  RENAME: { op: Op.RENAME, node: 1, name1: 'a', arg64: 8, name2: 'b', arg32a: RenameFlag.NOREPLACE },
  SYMLINK: { op: Op.SYMLINK, node: 1, name1: 'link', name2: '/abs/target' },
  LINK: { op: Op.LINK, node: 1, name1: 'hard', arg64: 9 },
  STATFS: { op: Op.STATFS, node: 1 },
  GETXATTR: { op: Op.GETXATTR, node: 1, name1: 'user.tag', len: 4096 },
  SETXATTR: { op: Op.SETXATTR, node: 1, name1: 'user.tag', data: Buffer.from('v'), arg32a: XattrFlag.CREATE },
  LISTXATTR: { op: Op.LISTXATTR, node: 1, len: 0 },
  REMOVEXATTR: { op: Op.REMOVEXATTR, node: 1, name1: 'user.tag' },
  FALLOCATE: { op: Op.FALLOCATE, fh: 5, offset: 0, arg64: 1 << 20, arg32a: 1 },
  ACCESS: { op: Op.ACCESS, node: 3, arg32a: 4 },
  MKNOD: { op: Op.MKNOD, node: 1, name1: 'fifo', arg32b: 0o10644, arg32a: 0 },
  WALK: { op: Op.WALK, node: 1, name1: 'a/b/c' },
  GETLK: { op: Op.GETLK, fh: 5, arg64: 77, data: encodeLock({ start: 10, end: 19, type: LockType.WRLCK, pid: 42 }) },
  SETLK: { op: Op.SETLK, fh: 5, arg64: 77, arg32a: LockFlag.FLOCK | LockFlag.WAIT, data: encodeLock({ type: LockType.RDLCK }) },
  INTERRUPT: { op: Op.INTERRUPT, arg64: 12345 },
};

function asBuf(v: string | Uint8Array | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === 'string' ? Buffer.from(v) : Buffer.from(v);
}

test('every operation round-trips through encodeRequest and decodeRequest', () => {
  for (const [name, spec] of Object.entries(SAMPLES)) {
    const { slot, payload } = encodeRequest(spec);
    assert.equal(slot.length, SLOT_SIZE, name);
    const d = decodeRequest(slot, payload);
    assert.equal(d.op, spec.op, name);
    assert.equal(d.id, 0n, `${name}: the transport assigns ids`);
    assert.equal(d.nsegs, 0, `${name}: the transport assigns segs`);
    assert.equal(d.node, BigInt(spec.node ?? 0), name);
    assert.equal(d.fh, BigInt(spec.fh ?? 0), name);
    assert.equal(d.offset, BigInt(spec.offset ?? 0), name);
    assert.equal(d.arg64, BigInt(spec.arg64 ?? 0), name);
    assert.equal(d.len, spec.len ?? 0, name);
    assert.equal(d.arg32a, spec.arg32a ?? 0, name);
    assert.equal(d.arg32b, spec.arg32b ?? 0, name);
    assert.deepEqual(d.name1, asBuf(spec.name1), name);
    assert.deepEqual(d.name2, asBuf(spec.name2), name);
    assert.deepEqual(d.data, asBuf(spec.data), name);
  }
  assert.equal(Object.keys(SAMPLES).length, Object.keys(Op).length);
});

test('outLen is the request len for output operations only', () => {
  assert.equal(encodeRequest(SAMPLES.READ).outLen, MAX_DATA);
  assert.equal(encodeRequest(SAMPLES.READDIR).outLen, 65536);
  assert.equal(encodeRequest(SAMPLES.READLINK).outLen, 4096);
  assert.equal(encodeRequest(SAMPLES.LISTXATTR).outLen, 0);
  assert.equal(encodeRequest(SAMPLES.WRITE).outLen, 0);
});

test('payloads up to 320 bytes go inline; larger ones go external with F_PAYLOAD_EXT', () => {
  const fits = encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(INLINE_CAPACITY, 7) });
  assert.equal(fits.payload, null);
  assert.equal(fits.slot.readUInt16LE(ReqOff.FLAGS), 0);
  const over = encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(INLINE_CAPACITY + 1, 7) });
  assert.equal(over.slot.readUInt16LE(ReqOff.FLAGS), RequestFlag.PAYLOAD_EXT);
  assert.equal(over.payload?.length, INLINE_CAPACITY + 1);
  assert.equal(over.slot.readUInt32LE(ReqOff.PAYLOAD_LEN), INLINE_CAPACITY + 1);

  const longPath = Array.from({ length: 30 }, (_, i) => `component-${i}`).join('/');
  const walk = encodeRequest({ op: Op.WALK, node: 1, name1: longPath });
  assert.ok(walk.payload !== null);
  assert.equal(decodeRequest(walk.slot, walk.payload).name1.toString(), longPath);

  const value = Buffer.alloc(1000, 1);
  const xattr = encodeRequest({ op: Op.SETXATTR, node: 1, name1: 'user.big', data: value });
  const d = decodeRequest(xattr.slot, xattr.payload);
  assert.equal(d.name1.toString(), 'user.big');
  assert.deepEqual(d.data, value);
});

test('a full 128 KiB write is accepted and one byte more is a LimitError', () => {
  assert.equal(encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(MAX_DATA) }).payload?.length, MAX_DATA);
  assert.throws(() => encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(MAX_DATA + 1) }), LimitError);
  assert.throws(() => encodeRequest({ op: Op.READ, fh: 1, len: MAX_DATA + 1 }), LimitError);
});

test('caller bugs are RangeErrors', () => {
  assert.throws(() => encodeRequest({ op: Op.READ, fh: -1 }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.READ, fh: 2n ** 64n }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.READ, offset: 1.5 }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.OPEN, arg32a: 2 ** 32 }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.GETATTR, name1: 'x' }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.READ, data: Buffer.from('x') }), RangeError);
});

function assertErrno(fn: () => unknown, name: 'EINVAL' | 'ENAMETOOLONG' | 'ENOENT' | 'ERANGE'): void {
  assert.throws(fn, (err: unknown) => err instanceof ErrnoError && err.errno === errno(name));
}

test('names are validated before sending', () => {
  for (const ok of ['a', 'x'.repeat(255), 'é'.repeat(127), '...', '.hidden', 'a b', '..a']) {
    assert.ok(validateName(ok, 'LOOKUP').length > 0, ok);
  }
  assertErrno(() => validateName('', 'LOOKUP'), 'EINVAL');
  assertErrno(() => validateName('.', 'LOOKUP'), 'EINVAL');
  assertErrno(() => validateName('..', 'LOOKUP'), 'EINVAL');
  assertErrno(() => validateName('a/b', 'LOOKUP'), 'EINVAL');
  assertErrno(() => validateName('a\0b', 'LOOKUP'), 'EINVAL');
  assertErrno(() => validateName('x'.repeat(256), 'LOOKUP'), 'ENAMETOOLONG');
  // 128 two-byte characters are 256 bytes: the limit is in bytes, not characters.
  assertErrno(() => validateName('é'.repeat(128), 'LOOKUP'), 'ENAMETOOLONG');
  assertErrno(() => encodeRequest({ op: Op.LOOKUP, node: 1 }), 'EINVAL');
  assertErrno(() => encodeRequest({ op: Op.RENAME, node: 1, name1: 'a', name2: '..' }), 'EINVAL');
  assertErrno(() => encodeRequest({ op: Op.MKDIR, node: 1, name1: Buffer.from([0x61, 0]) }), 'EINVAL');
});

test('walk paths are validated before sending', () => {
  const component = 'c'.repeat(255);
  const maxPath = Array.from({ length: 17 }, () => component).join('/').slice(0, 4096);
  assert.equal(Buffer.byteLength(maxPath), 4096);
  assert.equal(validatePath(maxPath, 'WALK').length, 4096);
  assertErrno(() => validatePath(`${maxPath}x`, 'WALK'), 'ENAMETOOLONG');
  assertErrno(() => validatePath(`a/${'x'.repeat(256)}/b`, 'WALK'), 'ENAMETOOLONG');
  assertErrno(() => validatePath('a\0b', 'WALK'), 'EINVAL');
  assertErrno(() => validatePath('/abs', 'WALK'), 'EINVAL');
  assertErrno(() => validatePath('', 'WALK'), 'EINVAL');
  assertErrno(() => encodeRequest({ op: Op.WALK, node: 1, name1: '/etc/passwd' }), 'EINVAL');
});

test('symlink targets are text: 1..4095 bytes, no NUL, absolute allowed', () => {
  assert.equal(validateTarget('/abs/../x', 'SYMLINK').toString(), '/abs/../x');
  assert.equal(validateTarget('x'.repeat(300), 'SYMLINK').length, 300);
  assert.equal(validateTarget('x'.repeat(4095), 'SYMLINK').length, 4095);
  assertErrno(() => validateTarget('x'.repeat(4096), 'SYMLINK'), 'ENAMETOOLONG');
  assertErrno(() => validateTarget('a\0', 'SYMLINK'), 'EINVAL');
  assertErrno(() => encodeRequest({ op: Op.SYMLINK, node: 1, name1: 'l', name2: '' }), 'ENOENT');
});

test('xattr names follow the name rule, as the server checks them', () => {
  assert.equal(encodeRequest({ op: Op.GETXATTR, node: 1, name1: 'user.a', len: 10 }).slot.readUInt16LE(ReqOff.NAME1_LEN), 6);
  assertErrno(() => encodeRequest({ op: Op.GETXATTR, node: 1, name1: 'u'.repeat(256) }), 'ENAMETOOLONG');
  assertErrno(() => encodeRequest({ op: Op.REMOVEXATTR, node: 1, name1: '' }), 'EINVAL');
});

test('splitPath drops empty and dot components and keeps ..', () => {
  assert.deepEqual(splitPath(''), []);
  assert.deepEqual(splitPath('/'), []);
  assert.deepEqual(splitPath('//a/./b//'), ['a', 'b']);
  assert.deepEqual(splitPath('a/../b'), ['a', '..', 'b']);
});

test('setattr payload round-trips and derives its mask', () => {
  const d = decodeSetattr(setattr.payload, setattr.valid);
  assert.equal(d.mode, 0o644);
  assert.equal(d.size, 12);
  assert.deepEqual(d.mtime, { sec: 1_700_000_000, nsec: 5 });
  assert.equal(
    setattr.valid,
    SetattrValid.MODE | SetattrValid.SIZE | SetattrValid.MTIME | SetattrValid.ATIME | SetattrValid.ATIME_NOW,
  );
  assert.equal(encodeSetattr({ uid: 5, gid: 6 }).valid, SetattrValid.UID | SetattrValid.GID);
  assert.throws(() => encodeSetattr({ mtime: { sec: 0, nsec: 1e9 } }), RangeError);
  assert.throws(() => encodeSetattr({ size: -1 }), RangeError);
});

test('u64 fields: numbers past 2^32 (written as two halves) and bigints up to 2^64-1 round-trip', () => {
  const big = 2 ** 40 + 5;
  const { slot } = encodeRequest({ op: Op.READ, fh: 2n ** 64n - 1n, offset: big, node: 2 ** 53 - 1, len: 4096 });
  const d = decodeRequest(slot, null);
  assert.equal(d.fh, 2n ** 64n - 1n);
  assert.equal(d.offset, BigInt(big));
  assert.equal(d.node, BigInt(2 ** 53 - 1));
  assert.throws(() => encodeRequest({ op: Op.READ, fh: 1, offset: -1, len: 1 }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.READ, fh: 1, offset: 2 ** 53, len: 1 }), RangeError);
  assert.throws(() => encodeRequest({ op: Op.READ, fh: 1, offset: 1.5, len: 1 }), RangeError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../core/errors.ts';
import {
  decodeAttr, decodeDirents, decodeEntry, decodeRequest, decodeResponse, decodeStatfs,
} from '../../../core/protocol/decode.ts';
import { encodeDirents, encodeRequest, encodeResponse } from '../../../core/protocol/encode.ts';
import { AttrOff, DirentOff, ReqOff, RspOff, SLOT_SIZE, direntSize } from '../../../core/protocol/layout.ts';
import { DirentType, Op, READDIR_EOF, RequestFlag } from '../../../core/protocol/opcodes.ts';
import { decodeSetattr, encodeSetattr } from '../../../core/protocol/setattr.ts';
import { decodeLock, decodeLockReply, encodeLock } from '../../../core/protocol/lock.ts';
import type { Attr, DirentRecord, StatfsInfo } from '../../../core/protocol/types.ts';
import { Prng } from '../../helpers/prng.ts';

const ATTR: Attr = {
  ino: 2n ** 63n + 5n,
  size: 2 ** 53 - 1,
  blocks: 8,
  atime: { sec: -1, nsec: 999_999_999 },
  mtime: { sec: 1_700_000_000, nsec: 1 },
  ctime: { sec: 0, nsec: 0 },
  mode: 0o100644,
  nlink: 2,
  uid: 1000,
  gid: 2 ** 32 - 1,
  rdev: 0,
  blksize: 4096,
};

const STATFS: StatfsInfo = {
  blocks: 1e12, bfree: 5e11, bavail: 4e11, files: 1e7, ffree: 9e6, bsize: 4096, namelen: 255, frsize: 4096,
};

const DIRENTS: DirentRecord[] = ['.', '..', 'a', 'eight888', 'nine99999', 'x'.repeat(255), 'ünï'].map((n, i) => ({
  name: Buffer.from(n), ino: BigInt(i + 100), type: i % 2 === 0 ? DirentType.REG : DirentType.DIR, next: BigInt(i + 1),
}));

test('response header round-trips', () => {
  const slot = encodeResponse({ id: 2n ** 64n - 1n, status: -2, len: 77, flags: READDIR_EOF, fh: 9, node: 3, generation: 4 });
  assert.deepEqual(decodeResponse(slot), {
    id: 2n ** 64n - 1n, status: -2, len: 77, flags: READDIR_EOF, fh: 9n, node: 3n, generation: 4n,
  });
});

test('entry and attr round-trip, including full-range ino and negative times', () => {
  const slot = encodeResponse({ id: 1, node: 42, generation: 7, attr: ATTR });
  assert.deepEqual(decodeEntry(slot), { node: 42n, generation: 7n, attr: ATTR });
  assert.deepEqual(decodeAttr(slot), ATTR);
});

test('statfs round-trips', () => {
  assert.deepEqual(decodeStatfs(encodeResponse({ id: 1, statfs: STATFS })), STATFS);
});

test('dirents round-trip and stop at the capacity on a record boundary', () => {
  const all = encodeDirents(DIRENTS, 65536);
  assert.equal(all.count, DIRENTS.length);
  assert.deepEqual(decodeDirents(all.buf, all.buf.length), DIRENTS);
  const some = encodeDirents(DIRENTS, direntSize(1) * 3 + 7);
  assert.equal(some.count, 3);
  assert.deepEqual(decodeDirents(some.buf, some.buf.length), DIRENTS.slice(0, 3));
  assert.deepEqual(decodeDirents(Buffer.alloc(64), 0), []);
});

test('malformed responses are ProtocolErrors', () => {
  assert.throws(() => decodeResponse(Buffer.alloc(SLOT_SIZE - 1)), ProtocolError);
  assert.throws(() => decodeResponse(Buffer.alloc(SLOT_SIZE + 1)), ProtocolError);
  const positive = Buffer.alloc(SLOT_SIZE);
  positive.writeInt32LE(1, RspOff.STATUS);
  assert.throws(() => decodeResponse(positive), ProtocolError);
  positive.writeInt32LE(-4096, RspOff.STATUS);
  assert.throws(() => decodeResponse(positive), ProtocolError);
  const slot = encodeResponse({ id: 1, node: 1, attr: ATTR });
  slot.writeUInt32LE(1_000_000_000, RspOff.ATTR + AttrOff.MTIME_NS);
  assert.throws(() => decodeAttr(slot), ProtocolError);
  const huge = encodeResponse({ id: 1, node: 1, attr: ATTR });
  huge.writeBigUInt64LE(2n ** 53n, RspOff.ATTR + AttrOff.SIZE);
  assert.throws(() => decodeEntry(huge), ProtocolError);
  assert.throws(() => decodeEntry(encodeResponse({ id: 1, node: 0, attr: ATTR })), ProtocolError);
  assert.throws(() => decodeAttr(Buffer.alloc(100), 20), ProtocolError);
});

test('malformed readdir output is a ProtocolError', () => {
  const { buf } = encodeDirents(DIRENTS.slice(0, 2), 4096);
  assert.throws(() => decodeDirents(buf, buf.length + 8), ProtocolError, 'len past the buffer');
  assert.throws(() => decodeDirents(buf, buf.length - 8), ProtocolError, 'record past len');
  assert.throws(() => decodeDirents(buf, 12), ProtocolError, 'misaligned len');
  assert.throws(() => decodeDirents(buf, 16), ProtocolError, 'truncated header');
  assert.throws(() => decodeDirents(buf, -8), ProtocolError);
  const zero = Buffer.from(buf);
  zero.writeUInt16LE(0, DirentOff.NAMELEN);
  assert.throws(() => decodeDirents(zero, zero.length), ProtocolError, 'namelen 0');
  const long = Buffer.alloc(direntSize(256));
  long.writeUInt16LE(256, DirentOff.NAMELEN);
  long.fill(0x61, DirentOff.NAME);
  assert.throws(() => decodeDirents(long, long.length), ProtocolError, 'namelen 256');
  const slash = Buffer.from(buf);
  slash[DirentOff.NAME] = 0x2f;
  assert.throws(() => decodeDirents(slash, slash.length), ProtocolError, 'slash in a name');
});

test('malformed requests are ProtocolErrors', () => {
  const { slot } = encodeRequest({ op: Op.LOOKUP, node: 1, name1: 'abc' });
  const badSegs = Buffer.from(slot);
  badSegs.writeUInt8(33, ReqOff.NSEGS);
  assert.throws(() => decodeRequest(badSegs), ProtocolError);
  const badNames = Buffer.from(slot);
  badNames.writeUInt16LE(4, ReqOff.NAME1_LEN);
  assert.throws(() => decodeRequest(badNames), ProtocolError);
  const badInline = Buffer.from(slot);
  badInline.writeUInt32LE(321, ReqOff.PAYLOAD_LEN);
  assert.throws(() => decodeRequest(badInline), ProtocolError);
  const ext = encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(1000) });
  assert.throws(() => decodeRequest(ext.slot), ProtocolError, 'missing external payload');
  assert.throws(() => decodeRequest(ext.slot, Buffer.alloc(999)), ProtocolError, 'short external payload');
  const badFlags = Buffer.from(slot);
  badFlags.writeUInt16LE(4, ReqOff.FLAGS);
  assert.throws(() => decodeRequest(badFlags), ProtocolError, 'an unknown flag');
  const wantBacking = Buffer.from(slot);
  wantBacking.writeUInt16LE(RequestFlag.WANT_BACKING, ReqOff.FLAGS);
  assert.equal(decodeRequest(wantBacking).op, decodeRequest(slot).op, 'WANT_BACKING is a known flag');
  assert.equal(decodeRequest(Buffer.from(slot).fill(99, ReqOff.OP, ReqOff.OP + 1)).op, 99, 'unknown op is not malformed');
});

// --- fuzz -----------------------------------------------------------------------------------------------------

type Decoder = (input: Buffer, rng: Prng) => unknown;

const DECODERS: Record<string, Decoder> = {
  decodeResponse: (b) => decodeResponse(b),
  decodeEntry: (b) => decodeEntry(b),
  decodeAttr: (b, rng) => decodeAttr(b, rng.int(b.length + 8) - 4),
  decodeStatfs: (b) => decodeStatfs(b),
  decodeDirents: (b, rng) => decodeDirents(b, rng.int(4) === 0 ? rng.int(b.length + 16) : b.length),
  decodeRequest: (b, rng) => decodeRequest(b.subarray(0, SLOT_SIZE), rng.int(2) === 0 ? null : b.subarray(SLOT_SIZE)),
  decodeSetattr: (b, rng) => decodeSetattr(b, rng.u32()),
  decodeLock: (b, rng) => decodeLock(b, rng.int(4) === 0 ? rng.int(b.length + 8) - 4 : 0),
  decodeLockReply: (b) => decodeLockReply(b),
};

// Valid encodings to mutate: the fuzzer spends most cases near the shapes decoders accept.
function seeds(): Buffer[] {
  const write = encodeRequest({ op: Op.WRITE, fh: 3, offset: 8, data: Buffer.alloc(700, 1) });
  return [
    encodeResponse({ id: 1, node: 5, attr: ATTR }),
    encodeResponse({ id: 2, statfs: STATFS }),
    encodeDirents(DIRENTS, 4096).buf,
    encodeRequest({ op: Op.RENAME, node: 1, name1: 'a', arg64: 2, name2: 'b' }).slot,
    Buffer.concat([write.slot, write.payload ?? Buffer.alloc(0)]),
    encodeSetattr({ mode: 1, atime: { sec: 5, nsec: 6 } }).payload,
    encodeLock({ start: 10, end: 20, type: 1, pid: 7 }),
    Buffer.concat([encodeResponse({ id: 3 }).subarray(0, RspOff.LOCK), encodeLock({ type: 0 }),
      Buffer.alloc(SLOT_SIZE - RspOff.LOCK - 24)]),
  ];
}

function mutate(rng: Prng, base: Buffer): Buffer {
  switch (rng.int(6)) {
    case 0: return rng.bytes(rng.pick([0, 1, 24, 48, 52, 88, SLOT_SIZE, SLOT_SIZE, SLOT_SIZE + 1, 2000]));
    case 1: return base.subarray(0, rng.int(base.length + 1)); // truncated
    case 2: return Buffer.concat([base, rng.bytes(1 + rng.int(64))]); // appended
    case 3: return base.subarray(rng.int(base.length + 1)); // split: the tail alone
    default: {
      const out = Buffer.from(base);
      for (let n = 1 + rng.int(8); n > 0 && out.length > 0; n--) out[rng.int(out.length)] = rng.u32() & 0xff;
      return out;
    }
  }
}

test('fuzz: every decoder returns a value or throws ProtocolError, nothing else (10k cases, fixed seed)', () => {
  const seed = 0x5eed_f00d;
  const rng = new Prng(seed);
  const bases = seeds();
  const names = Object.keys(DECODERS);
  const outcomes = { ok: 0, protocol: 0 };
  for (let i = 0; i < 10_000; i++) {
    const name = rng.pick(names);
    const input = mutate(rng, rng.pick(bases));
    const decoder = DECODERS[name];
    assert.ok(decoder);
    try {
      decoder(input, rng);
      outcomes.ok++;
    } catch (err) {
      if (!(err instanceof ProtocolError)) {
        assert.fail(`seed ${seed} case ${i}: ${name} threw ${String(err)} on ${input.toString('hex').slice(0, 200)}`);
      }
      outcomes.protocol++;
    }
  }
  // Both branches must have run, or the fuzzer is not reaching the decoders' checks.
  assert.ok(outcomes.ok > 500, `only ${outcomes.ok} inputs decoded`);
  assert.ok(outcomes.protocol > 500, `only ${outcomes.protocol} inputs were refused`);
});

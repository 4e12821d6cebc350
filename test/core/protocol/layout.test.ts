// The wire layout is written twice, once per language: core/protocol (the guest's encoder) and
// native/src/protocol.hpp (dom0's decoder). This test reads the C++ header and holds the two to the same numbers,
// so changing one side alone fails here rather than on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { INLINE_CAPACITY, INLINE_OFFSET, LOCK_PAYLOAD_SIZE, MAX_DATA, MAX_NAME, MAX_PATH, MAX_SEGS, PAGE_SIZE,
  RING_HEADER_SIZE, SETATTR_PAYLOAD_SIZE, SLOT_SIZE } from '../../../core/protocol/layout.ts';
import { ALL_FEATURES, Feature, LockFlag, LockType, Op, READDIR_EOF, RELEASE_FLOCK_UNLOCK, RequestFlag, ResponseFlag,
  SetattrValid, WALK_PEEK } from '../../../core/protocol/opcodes.ts';

const header = fs.readFileSync(new URL('../../../native/src/protocol.hpp', import.meta.url), 'utf8');

/** Every `kName = number` in the header (constexpr constants and enumerators alike). */
function cppConstants(): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of header.matchAll(/\b(k[A-Z]\w*)\s*=\s*(\d+)\b/g)) out.set(m[1] as string, Number(m[2]));
  return out;
}

const camel = (upper: string): string =>
  upper.toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());

test('sizes and offsets agree', () => {
  const k = cppConstants();
  const expect: Record<string, number> = {
    kSlotSize: SLOT_SIZE, kRingHeaderSize: RING_HEADER_SIZE, kPageSize: PAGE_SIZE, kMaxSegs: MAX_SEGS,
    kInlineOffset: INLINE_OFFSET, kMaxName: MAX_NAME, kMaxPath: MAX_PATH, kSetattrPayload: SETATTR_PAYLOAD_SIZE,
    kFlagPayloadExt: RequestFlag.PAYLOAD_EXT, kFlagWantBacking: RequestFlag.WANT_BACKING,
    kRspBacking: ResponseFlag.BACKING, kReaddirEof: READDIR_EOF, kWalkPeek: WALK_PEEK,
    kLockPayload: LOCK_PAYLOAD_SIZE, kLkFlock: LockFlag.FLOCK, kLkWait: LockFlag.WAIT, kLockRead: LockType.RDLCK,
    kLockWrite: LockType.WRLCK, kLockUnlock: LockType.UNLCK, kReleaseFlockUnlock: RELEASE_FLOCK_UNLOCK,
  };
  for (const [name, value] of Object.entries(expect)) assert.equal(k.get(name), value, name);
  assert.equal(INLINE_CAPACITY, SLOT_SIZE - INLINE_OFFSET);
  assert.equal(MAX_DATA, MAX_SEGS * PAGE_SIZE);
});

test('every opcode has the same number on both sides, and no side has one the other lacks', () => {
  const k = cppConstants();
  const ops = new Map(Object.entries(Op).map(([name, v]) => [`k${camel(name)}`, v]));
  for (const [name, value] of ops) assert.equal(k.get(name), value, `${name}`);
  const enumBody = header.slice(header.indexOf('enum Op'), header.indexOf('};', header.indexOf('enum Op')));
  const cppNames = [...enumBody.matchAll(/\b(k[A-Z]\w*)\s*=/g)].map((m) => m[1]).filter((n) => n !== 'kOpCount');
  assert.deepEqual(new Set(cppNames), new Set(ops.keys()));
});

test('feature and setattr bits agree', () => {
  const k = cppConstants();
  for (const [name, value] of Object.entries(Feature)) assert.equal(k.get(`kFeat${camel(name)}`), value, name);
  assert.equal(ALL_FEATURES, Object.values(Feature).reduce((a, b) => a | b, 0));
  const setattr: Record<string, string> = {
    MODE: 'kSetMode', UID: 'kSetUid', GID: 'kSetGid', SIZE: 'kSetSize', ATIME: 'kSetAtime', MTIME: 'kSetMtime',
    ATIME_NOW: 'kSetAtimeNow', MTIME_NOW: 'kSetMtimeNow',
  };
  for (const [ts, cpp] of Object.entries(setattr)) {
    assert.equal(k.get(cpp), (SetattrValid as Record<string, number>)[ts], `${ts} ↔ ${cpp}`);
  }
});

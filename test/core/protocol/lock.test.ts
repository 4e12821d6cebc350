import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../core/errors.ts';
import { encodeResponse } from '../../../core/protocol/encode.ts';
import { LOCK_PAYLOAD_SIZE, LockOff, OFFSET_MAX, RspOff, U64_MAX } from '../../../core/protocol/layout.ts';
import { decodeLock, decodeLockReply, encodeLock } from '../../../core/protocol/lock.ts';
import { LockType } from '../../../core/protocol/opcodes.ts';

test('a FileLock round-trips; its range defaults to the whole file', () => {
  const buf = encodeLock({ start: 2 ** 40, end: U64_MAX, type: LockType.WRLCK, pid: 4242 });
  assert.equal(buf.length, LOCK_PAYLOAD_SIZE);
  assert.deepEqual(decodeLock(buf), { start: 2n ** 40n, end: U64_MAX, type: LockType.WRLCK, pid: 4242 });
  assert.deepEqual(decodeLock(encodeLock({ type: LockType.RDLCK })), { start: 0n, end: OFFSET_MAX, type: LockType.RDLCK, pid: 0 });
  assert.equal(buf.readUInt32LE(LockOff.TYPE), 1, 'F_WRLCK is 1, as on Linux');
});

test('GETLK\'s answer sits at offset 48 of the response', () => {
  const slot = encodeResponse({ id: 9 });
  encodeLock({ start: 0, end: 39, type: LockType.WRLCK }).copy(slot, RspOff.LOCK);
  assert.deepEqual(decodeLockReply(slot), { start: 0n, end: 39n, type: LockType.WRLCK, pid: 0 });
  assert.equal(decodeLockReply(encodeResponse({ id: 9 })).type, LockType.RDLCK, 'a zeroed record reads as F_RDLCK at 0');
});

test('bad FileLocks: RangeError when encoding, ProtocolError when decoding', () => {
  assert.throws(() => encodeLock({ type: 3 as never }), RangeError);
  assert.throws(() => encodeLock({ type: LockType.RDLCK, start: -1 }), RangeError);
  assert.throws(() => encodeLock({ type: LockType.RDLCK, end: 2n ** 64n }), RangeError);
  assert.throws(() => encodeLock({ type: LockType.RDLCK, pid: 2 ** 32 }), RangeError);
  const bad = encodeLock({ type: LockType.RDLCK });
  bad.writeUInt32LE(3, LockOff.TYPE);
  assert.throws(() => decodeLock(bad), ProtocolError);
  assert.throws(() => decodeLock(encodeLock({ type: LockType.WRLCK, start: 10, end: 9 })), ProtocolError);
  assert.equal(decodeLock(encodeLock({ type: LockType.UNLCK, start: 10, end: 9 })).type, LockType.UNLCK,
    'an F_UNLCK answer carries no range worth checking');
  assert.throws(() => decodeLock(Buffer.alloc(23)), ProtocolError);
  assert.throws(() => decodeLock(Buffer.alloc(24), 1), ProtocolError);
  assert.throws(() => decodeLockReply(Buffer.alloc(100)), ProtocolError);
});

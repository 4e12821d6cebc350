// File locks held in dom0 for every guest at once (GETLK, SETLK, INTERRUPT; FLUSH and RELEASE with lock owners),
// driven by raw guests that share one export directory, each through an export of its own: what one guest locks
// is enforced in the other, waits hold no dom0 thread, and a guest that goes away, however it goes, lets go.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Dom0 } from '../../helpers/dom0.ts';
import { startDom0, uniqueName } from '../../helpers/fixtures.ts';
import { RawGuest, type RawReply } from '../../helpers/raw-guest.ts';
import { LOCK_PAYLOAD_SIZE, OFFSET_MAX, U64_MAX } from '../../../core/protocol/layout.ts';
import { type FileLock, type FileLockSpec, decodeLockReply, encodeLock } from '../../../core/protocol/lock.ts';
import { LockFlag, LockType, Op, OpenFlag, RELEASE_FLOCK_UNLOCK } from '../../../core/protocol/opcodes.ts';

const LOCK_CHILD = new URL('../../helpers/lock-child.ts', import.meta.url).pathname;
const E = Object.fromEntries(
  ['EBADF', 'EAGAIN', 'EINVAL', 'ENOENT', 'EINTR', 'ENOLCK', 'EDEADLK'].map((n) => [n, -(os.constants.errno as Record<string, number>)[n]!]),
) as Record<'EBADF' | 'EAGAIN' | 'EINVAL' | 'ENOENT' | 'EINTR' | 'ENOLCK' | 'EDEADLK', number>;
const { RDLCK, WRLCK, UNLCK } = LockType;
const { O_RDONLY, O_WRONLY, O_RDWR } = OpenFlag;
const CAPS = { maxLocks: 16, maxLockWaiters: 1 };

let dom0: Dom0;
const guests: RawGuest[] = [];

before(async () => {
  const shared = (name: string, limits?: object): object => ({
    name, secret: `${name}-secret`, exports: [{ name: 'home', path: 'shared' }], ...(limits ? { limits } : {}),
  });
  dom0 = await startDom0({ guests: [shared('alice'), shared('bob'), shared('carol', CAPS), shared('dave')] });
});

after(async () => {
  for (const g of guests) g.close();
  await dom0?.cleanup();
});

async function connect(name: string): Promise<RawGuest> {
  const g = await RawGuest.connect(dom0.controlPath, name, `${name}-secret`);
  guests.push(g);
  return g;
}

/** A fresh file in the shared directory, and alice's and bob's read-write handles on it. */
async function pair(): Promise<{ file: string; a: RawGuest; b: RawGuest; fa: bigint; fb: bigint }> {
  const file = uniqueName('lock');
  fs.writeFileSync(path.join(dom0.dir, 'shared', file), 'x'.repeat(100));
  const a = await connect('alice');
  const b = await connect('bob');
  return { file, a, b, fa: await a.open(file, O_RDWR), fb: await b.open(file, O_RDWR) };
}

/** `p`'s value if it settles within `ms`, else `late`. */
async function within<T, L>(p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<L>((resolve) => (timer = setTimeout(() => resolve(late), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const LATE = Symbol('late');

/** `p`'s answer, which must come within a few seconds: a wait that is never settled fails here, not in a hang. */
async function answered<T>(p: Promise<T>, what = 'the answer'): Promise<T> {
  const r = await within(p, 5000, LATE);
  if (r === LATE) throw new Error(`${what} did not come within 5 s`);
  return r as T;
}

/** True when `p` is still unanswered after `ms`. */
async function stillWaiting(p: Promise<unknown>, ms: number): Promise<boolean> {
  return (await within(p, ms, LATE)) === LATE;
}

function setlk(g: RawGuest, fh: bigint, owner: number, lock: FileLockSpec, flags = 0): Promise<RawReply> {
  return g.call({ op: Op.SETLK, fh, arg64: owner, arg32a: flags, data: encodeLock(lock) });
}

/** The status of a request that must be answered at once (a wait that is granted later goes through answered()). */
async function status(reply: Promise<RawReply>): Promise<number> {
  return (await answered(reply)).status;
}

async function getlk(g: RawGuest, fh: bigint, owner: number, lock: FileLockSpec, flags = 0): Promise<FileLock> {
  const r = await answered(g.call({ op: Op.GETLK, fh, arg64: owner, arg32a: flags, data: encodeLock(lock) }));
  assert.equal(r.status, 0, 'GETLK');
  return decodeLockReply(r.slot);
}

/** What GETLK answers when nothing conflicts. */
const NONE = { start: 0n, end: 0n, type: UNLCK, pid: 0 };
const range = (start: number | bigint, end: number | bigint, type: number, pid = 0): FileLock =>
  ({ start: BigInt(start), end: BigInt(end), type: type as FileLock['type'], pid });

test('two guests: write locks exclude each other and everything else, read locks share', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 99, type: WRLCK })), 0);
  assert.equal(await status(setlk(b, fb, 1, { start: 50, end: 60, type: WRLCK })), E.EAGAIN, 'write over write');
  assert.equal(await status(setlk(b, fb, 1, { start: 99, end: 99, type: RDLCK })), E.EAGAIN, 'read over write');
  assert.equal(await status(setlk(b, fb, 1, { start: 100, end: 199, type: WRLCK })), 0, 'the range next to it is free');
  assert.equal(await status(setlk(b, fb, 1, { start: 100, end: 199, type: UNLCK })), 0);
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 99, type: UNLCK })), 0);
  assert.equal(await status(setlk(a, fa, 1, { type: RDLCK })), 0, 'a read lock on the whole file');
  assert.equal(await status(setlk(b, fb, 1, { start: 0, end: 99, type: RDLCK })), 0, 'read locks share');
  assert.equal(await status(setlk(b, fb, 2, { start: 0, end: 0, type: WRLCK })), E.EAGAIN, 'not with a write lock');
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK })), E.EAGAIN, 'nor can a reader turn writer under another');
});

test('GETLK reports the conflicting range and type, and the holder\'s pid only to the holder\'s own guest', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { start: 10, end: 19, type: WRLCK, pid: 4321 })), 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: RDLCK }), range(10, 19, WRLCK, 0), 'another guest');
  assert.deepEqual(await getlk(a, fa, 2, { start: 0, end: 99, type: RDLCK }), range(10, 19, WRLCK, 4321), 'same guest');
  assert.deepEqual(await getlk(a, fa, 1, { start: 0, end: 99, type: WRLCK }), NONE, 'an owner never conflicts with itself');
  assert.deepEqual(await getlk(b, fb, 1, { start: 20, end: 29, type: WRLCK }), NONE, 'beside it');
  // The kernel's "to the end of the file" is OFFSET_MAX; UINT64_MAX says the same, and the answer uses OFFSET_MAX.
  assert.equal(await status(setlk(a, fa, 1, { start: 1000, end: U64_MAX, type: WRLCK })), 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 2 ** 40, end: OFFSET_MAX, type: RDLCK }), range(1000, OFFSET_MAX, WRLCK));
});

test('an owner\'s ranges split when it unlocks the middle, merge when they touch, and convert in place', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 99, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, fa, 1, { start: 40, end: 59, type: UNLCK })), 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: WRLCK }), range(0, 39, WRLCK));
  assert.deepEqual(await getlk(b, fb, 1, { start: 40, end: 99, type: WRLCK }), range(60, 99, WRLCK));
  assert.deepEqual(await getlk(b, fb, 1, { start: 40, end: 59, type: WRLCK }), NONE);
  assert.equal(await status(setlk(b, fb, 1, { start: 40, end: 59, type: WRLCK })), 0, 'the hole is free for others');

  assert.equal(await status(setlk(a, fa, 1, { start: 200, end: 209, type: RDLCK })), 0);
  assert.equal(await status(setlk(a, fa, 1, { start: 210, end: 219, type: RDLCK })), 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 200, end: 300, type: WRLCK }), range(200, 219, RDLCK), 'merged');
  assert.equal(await status(setlk(a, fa, 1, { start: 205, end: 207, type: WRLCK })), 0, 'converted');
  assert.deepEqual(await getlk(b, fb, 1, { start: 200, end: 300, type: RDLCK }), range(205, 207, WRLCK));
  assert.equal(await status(setlk(b, fb, 1, { start: 200, end: 204, type: RDLCK })), 0, 'the rest is still read');
  assert.equal(await status(setlk(b, fb, 1, { start: 208, end: 219, type: RDLCK })), 0);
});

test('SETLK with LK_WAIT waits without holding a dom0 thread, and is granted when the other guest unlocks', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK })), 0);
  // More waiters than dom0 has worker threads (4): were a wait to hold one, the rest of this would stall.
  const waits = Array.from({ length: 12 }, (_, i) => setlk(b, fb, 10 + i, { start: i, end: i, type: RDLCK }, LockFlag.WAIT));
  assert.ok(await stillWaiting(Promise.any(waits), 300), 'no wait is answered while the write lock stands');
  // GETATTR runs on the guest's own thread in dom0, FSYNC on the worker pool: both are free.
  assert.equal((await answered(b.call({ op: Op.GETATTR, node: 1 }))).status, 0, 'the waiting guest is still served');
  assert.equal((await answered(b.call({ op: Op.FSYNC, fh: fb }))).status, 0, 'on the pool as well');
  assert.equal((await answered(a.call({ op: Op.GETATTR, node: 1 }))).status, 0, 'and so is the holder');
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 5, type: UNLCK })), 0);
  const first = await answered(Promise.all(waits.slice(0, 6)), 'the grants');
  assert.deepEqual(first.map((r) => r.status), [0, 0, 0, 0, 0, 0], 'the unlocked part is granted at once');
  assert.ok(await stillWaiting(Promise.any(waits.slice(6)), 100), 'what is still locked still waits');
  assert.equal(await status(setlk(a, fa, 1, { type: UNLCK })), 0);
  assert.deepEqual((await answered(Promise.all(waits.slice(6)), 'the grants')).map((r) => r.status), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(await getlk(a, fa, 1, { start: 11, end: 11, type: WRLCK }), range(11, 11, RDLCK), 'bob holds them');
});

test('INTERRUPT ends a waiting SETLK with -EINTR, and it takes nothing', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK })), 0);
  const wait = b.send({ op: Op.SETLK, fh: fb, arg64: 1, arg32a: LockFlag.WAIT, data: encodeLock({ type: WRLCK }) });
  assert.ok(await stillWaiting(wait.reply, 100));
  assert.equal((await b.call({ op: Op.INTERRUPT, arg64: wait.id })).status, 0);
  assert.equal((await answered(wait.reply)).status, E.EINTR);
  assert.equal((await b.call({ op: Op.INTERRUPT, arg64: wait.id })).status, E.ENOENT, 'nothing waits any more');
  assert.equal((await a.call({ op: Op.INTERRUPT, arg64: wait.id })).status, E.ENOENT, 'another guest\'s ids are not its');
  assert.equal(await status(setlk(a, fa, 1, { type: UNLCK })), 0);
  assert.deepEqual(await getlk(a, fa, 2, { type: WRLCK }), NONE, 'the interrupted request was not granted later');
});

test('a guest that disconnects lets go of its locks and its waits, and the waiter is granted', async () => {
  const { file, a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK })), 0);
  const wait = setlk(b, fb, 1, { type: WRLCK }, LockFlag.WAIT);
  assert.ok(await stillWaiting(wait, 100));
  a.close();
  assert.equal((await answered(wait)).status, 0, 'granted once alice is gone');
  // Alice again: bob's lock holds against her; when bob goes, nothing of his is left, not even a wait.
  const a2 = await connect('alice');
  const fa2 = await a2.open(file, O_RDWR);
  const back = setlk(a2, fa2, 1, { type: RDLCK }, LockFlag.WAIT);
  assert.ok(await stillWaiting(back, 100));
  const stale = b.send({ op: Op.SETLK, fh: fb, arg64: 2, arg32a: LockFlag.WAIT, data: encodeLock({ type: WRLCK }) });
  stale.reply.catch(() => {});
  b.close();
  assert.equal((await answered(back)).status, 0, 'granted once bob is gone');
  assert.deepEqual(await getlk(a2, fa2, 2, { type: WRLCK }), range(0, OFFSET_MAX, RDLCK, 0), 'only alice\'s own read lock');
});

test('a SIGKILLed guest lets go of its locks and the waiter is granted', async () => {
  const file = uniqueName('lock');
  fs.writeFileSync(path.join(dom0.dir, 'shared', file), '');
  const child = fork(LOCK_CHILD, [dom0.controlPath, 'dave', 'dave-secret', file], {
    execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const locked = await answered(new Promise<{ status: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { status: number }));
      child.once('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
    }), 'the child\'s lock');
    assert.equal(locked.status, 0);
    const b = await connect('bob');
    const fb = await b.open(file, O_RDWR);
    assert.equal((await getlk(b, fb, 1, { type: RDLCK })).type, WRLCK, 'the child holds it');
    const wait = setlk(b, fb, 1, { type: WRLCK }, LockFlag.WAIT);
    assert.ok(await stillWaiting(wait, 100));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.equal((await answered(wait)).status, 0, 'granted once dom0 saw the guest die');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

test('flock and POSIX locks do not interfere; flock locks the whole file and converts in place', async () => {
  const { a, b, fa, fb } = await pair();
  const FLOCK = LockFlag.FLOCK;
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK }, FLOCK)), 0, 'LOCK_EX');
  assert.equal(await status(setlk(b, fb, 1, { type: WRLCK })), 0, 'a POSIX write lock beside it');
  assert.deepEqual(await getlk(a, fa, 1, { start: 5, end: 5, type: RDLCK }), range(0, OFFSET_MAX, WRLCK), 'POSIX sees POSIX');
  assert.equal(await status(setlk(b, fb, 1, { start: 7, end: 7, type: RDLCK }, FLOCK)), E.EAGAIN, 'flock sees flock, whatever the range');
  assert.deepEqual(await getlk(b, fb, 2, { type: RDLCK }, FLOCK), range(0, OFFSET_MAX, WRLCK));
  assert.equal(await status(setlk(a, fa, 1, { type: RDLCK }, FLOCK)), 0, 'LOCK_SH converts alice\'s lock');
  assert.equal(await status(setlk(b, fb, 2, { type: RDLCK }, FLOCK)), 0, 'so bob may share it');
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK }, FLOCK)), E.EAGAIN, 'not back to exclusive while bob shares');
  // As Linux: a conversion that cannot be granted at once loses the lock it had.
  assert.equal(await status(setlk(b, fb, 3, { type: WRLCK }, FLOCK)), E.EAGAIN);
  assert.equal(await status(setlk(b, fb, 2, { type: UNLCK }, FLOCK)), 0);
  assert.equal(await status(setlk(b, fb, 3, { type: WRLCK }, FLOCK)), 0, 'alice lost hers by asking');
});

test('FLUSH with a lock owner drops that owner\'s POSIX locks on the file, and nothing else', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 9, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, fa, 2, { start: 20, end: 29, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, fa, 1, { type: WRLCK }, LockFlag.FLOCK)), 0);
  assert.equal((await a.call({ op: Op.FLUSH, fh: fa, arg64: 0 })).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 9, type: WRLCK }), range(0, 9, WRLCK), 'owner 0 is no owner');
  assert.equal((await a.call({ op: Op.FLUSH, fh: fa, arg64: 1 })).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 9, type: WRLCK }), NONE, 'owner 1\'s range went');
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: WRLCK }), range(20, 29, WRLCK), 'owner 2\'s stays');
  assert.equal((await getlk(b, fb, 1, { type: WRLCK }, LockFlag.FLOCK)).type, WRLCK, 'and so does the flock lock');
  assert.equal((await b.call({ op: Op.FLUSH, fh: fb, arg64: 2 })).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: WRLCK }), range(20, 29, WRLCK), 'bob\'s owner 2 is not alice\'s');
});

test('RELEASE drops every lock taken through the handle, and with FLOCK_UNLOCK its owner\'s flock lock', async () => {
  const { file, a, b, fa, fb } = await pair();
  const fa2 = await a.open(file, O_RDWR);
  const fa3 = await a.open(file, O_RDWR);
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 9, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, fa2, 2, { start: 20, end: 29, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, fa3, 3, { type: WRLCK }, LockFlag.FLOCK)), 0);
  assert.equal((await a.call({ op: Op.RELEASE, fh: fa })).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: WRLCK }), range(20, 29, WRLCK), 'fa\'s lock went');
  assert.equal((await a.call({ op: Op.RELEASE, fh: fa2, arg64: 3, arg32a: RELEASE_FLOCK_UNLOCK })).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 99, type: WRLCK }), NONE, 'fa2\'s lock went');
  assert.equal((await getlk(b, fb, 1, { type: WRLCK }, LockFlag.FLOCK)).type, UNLCK, 'owner 3\'s flock lock went too');
  assert.equal((await a.call({ op: Op.RELEASE, fh: fa3 })).status, 0);
});

test('a write lock needs a handle open for writing and a read lock one open for reading; flock asks neither', async () => {
  const { file, a, b, fb } = await pair();
  const ro = await a.open(file, O_RDONLY);
  const wo = await a.open(file, O_WRONLY);
  assert.equal(await status(setlk(a, ro, 1, { type: WRLCK })), E.EBADF);
  assert.equal(await status(setlk(a, wo, 1, { type: RDLCK })), E.EBADF);
  assert.deepEqual(await getlk(b, fb, 1, { type: WRLCK }), NONE, 'neither was taken');
  assert.equal(await status(setlk(a, ro, 1, { start: 0, end: 9, type: RDLCK })), 0);
  assert.equal(await status(setlk(a, wo, 1, { start: 10, end: 19, type: WRLCK })), 0);
  assert.equal(await status(setlk(a, ro, 2, { type: WRLCK }, LockFlag.FLOCK)), 0, 'LOCK_EX on a read-only handle');
  assert.equal((await getlk(a, ro, 3, { start: 10, end: 10, type: WRLCK })).type, WRLCK, 'GETLK asks nothing of the handle');
});

test('hostile lock requests are answered with an errno, and dom0 goes on serving', async () => {
  const { a, b, fa, fb } = await pair();
  const lock = (spec: Partial<Record<'start' | 'end', bigint>> & { type: number }): Buffer => {
    const buf = encodeLock({ type: RDLCK });
    if (spec.start !== undefined) buf.writeBigUInt64LE(spec.start, 0);
    if (spec.end !== undefined) buf.writeBigUInt64LE(spec.end, 8);
    buf.writeUInt32LE(spec.type, 16);
    return buf;
  };
  const cases: Array<[string, Parameters<RawGuest['call']>[0], number]> = [
    ['type 3', { op: Op.SETLK, fh: fa, data: lock({ type: 3 }) }, E.EINVAL],
    ['type 2^32-1', { op: Op.GETLK, fh: fa, data: lock({ type: 0xffff_ffff }) }, E.EINVAL],
    ['GETLK of F_UNLCK', { op: Op.GETLK, fh: fa, data: lock({ type: UNLCK }) }, E.EINVAL],
    ['start after end', { op: Op.SETLK, fh: fa, data: lock({ type: RDLCK, start: 10n, end: 9n }) }, E.EINVAL],
    ['start past OFFSET_MAX', { op: Op.SETLK, fh: fa, data: lock({ type: RDLCK, start: OFFSET_MAX + 1n, end: U64_MAX }) }, E.EINVAL],
    ['unknown flag bit', { op: Op.SETLK, fh: fa, arg32a: 4, data: lock({ type: RDLCK }) }, E.EINVAL],
    ['LK_WAIT on GETLK', { op: Op.GETLK, fh: fa, arg32a: LockFlag.WAIT, data: lock({ type: RDLCK }) }, E.EINVAL],
    ['short payload', { op: Op.SETLK, fh: fa, data: lock({ type: RDLCK }).subarray(0, LOCK_PAYLOAD_SIZE - 1) }, E.EINVAL],
    ['no payload', { op: Op.GETLK, fh: fa }, E.EINVAL],
    ['a name', { op: Op.SETLK, fh: fa, name1: 'x', data: lock({ type: RDLCK }) }, E.EINVAL],
    ['handle 0', { op: Op.SETLK, fh: 0, data: lock({ type: RDLCK }) }, E.EBADF],
    ['made-up handle', { op: Op.SETLK, fh: 0xdead_beef_0000_0001n, data: lock({ type: RDLCK }) }, E.EBADF],
    ['bob\'s handle', { op: Op.SETLK, fh: fb, data: lock({ type: RDLCK }) }, E.EBADF],
    ['INTERRUPT of nothing', { op: Op.INTERRUPT, arg64: 12345 }, E.ENOENT],
    ['INTERRUPT with a payload', { op: Op.INTERRUPT, data: lock({ type: RDLCK }) }, E.EINVAL],
  ];
  for (const [what, req, errno] of cases) assert.equal((await a.call(req)).status, errno, what);
  // A wait through a handle that is then released ends with EBADF rather than outliving it.
  assert.equal(await status(setlk(b, fb, 1, { type: WRLCK })), 0);
  const wait = setlk(a, fa, 1, { type: WRLCK }, LockFlag.WAIT);
  assert.ok(await stillWaiting(wait, 100));
  assert.equal((await a.call({ op: Op.RELEASE, fh: fa })).status, 0);
  assert.equal((await answered(wait)).status, E.EBADF);
  assert.equal((await a.call({ op: Op.GETATTR, node: 1 })).status, 0, 'alice is still served');
  assert.equal((await getlk(b, fb, 2, { type: WRLCK })).type, WRLCK, 'and bob\'s lock still stands');
});

test('caps: past maxLocks and maxLockWaiters a guest gets ENOLCK, and its other locks stand', async () => {
  const { file, b, fb } = await pair();
  const c = await connect('carol');
  const fc = await c.open(file, O_RDWR);
  // Ranges that do not touch, so none merges: each is one lock.
  for (let i = 0; i < CAPS.maxLocks; i++) {
    assert.equal(await status(setlk(c, fc, 1, { start: 10 * i, end: 10 * i + 2, type: WRLCK })), 0, `lock ${i}`);
  }
  assert.equal(await status(setlk(c, fc, 1, { start: 1000, end: 1000, type: WRLCK })), E.ENOLCK, 'one lock too many');
  assert.equal(await status(setlk(c, fc, 1, { start: 11, end: 11, type: UNLCK })), E.ENOLCK, 'so is a split');
  assert.equal(await status(setlk(c, fc, 1, { start: 0, end: 2, type: UNLCK })), 0, 'an unlock makes room');
  assert.equal(await status(setlk(c, fc, 1, { start: 1000, end: 1000, type: WRLCK })), 0, 'for one more');
  assert.equal(await status(setlk(c, fc, 1, { start: 1000, end: 1000, type: RDLCK })), 0, 'a conversion adds nothing');
  assert.equal(await status(setlk(c, fc, 2, { start: 2000, end: 2000, type: WRLCK })), E.ENOLCK, 'the cap is the guest\'s');
  assert.deepEqual(await getlk(b, fb, 1, { start: 11, end: 11, type: RDLCK }), range(10, 12, WRLCK), 'carol\'s locks stand');
  // One waiter at a time.
  assert.equal(await status(setlk(b, fb, 1, { start: 5000, end: 5000, type: WRLCK })), 0);
  const wait = setlk(c, fc, 3, { start: 5000, end: 5000, type: RDLCK }, LockFlag.WAIT);
  assert.ok(await stillWaiting(wait, 100));
  assert.equal(await status(setlk(c, fc, 4, { start: 5000, end: 5000, type: RDLCK }, LockFlag.WAIT)), E.ENOLCK);
  assert.equal(await status(setlk(b, fb, 1, { start: 5000, end: 5000, type: UNLCK })), 0);
  assert.equal((await answered(wait)).status, E.ENOLCK, 'granted past the lock cap: answered ENOLCK');
  c.close();
});

test('EDEADLK: a wait that would close a cycle of owners across guests is refused', async () => {
  const { a, b, fa, fb } = await pair();
  assert.equal(await status(setlk(a, fa, 1, { start: 0, end: 0, type: WRLCK })), 0);
  assert.equal(await status(setlk(b, fb, 1, { start: 1, end: 1, type: WRLCK })), 0);
  const aWaits = setlk(a, fa, 1, { start: 1, end: 1, type: WRLCK }, LockFlag.WAIT);
  assert.ok(await stillWaiting(aWaits, 100));
  assert.equal(await status(setlk(b, fb, 1, { start: 0, end: 0, type: WRLCK }, LockFlag.WAIT)), E.EDEADLK);
  assert.equal(await status(setlk(b, fb, 1, { start: 1, end: 1, type: UNLCK })), 0);
  assert.equal((await answered(aWaits)).status, 0);
  assert.deepEqual(await getlk(b, fb, 1, { start: 0, end: 9, type: RDLCK }), range(0, 1, WRLCK), 'alice holds both, merged');
});

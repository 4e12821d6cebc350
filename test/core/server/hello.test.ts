// A hostile control channel: raw connections sending what no front end would — bytes that are not JSON, hellos
// with missing, mistyped or absurd fields, ring hellos with the wrong descriptors or a memory too small for the
// layout they declare. Each must be answered with an error (or a close) and cost dom0 nothing: the descriptors it
// was handed are closed, and it goes on serving a well-behaved guest.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ControlConnection, dupFd } from '../../../core/xen/control-socket.ts';
import { DomainMemory } from '../../../core/xen/memory.ts';
import { native } from '../../../core/xen/native.ts';
import { GuestRing } from '../../../core/ring/guest-ring.ts';
import type { Guest } from '../../../core/frontend/guest.ts';
import type { Dom0 } from '../../helpers/dom0.ts';
import {
  Scope, connectGuest, hostPath, livePid, openFds, startDom0, uniqueName, waitFor,
} from '../../helpers/fixtures.ts';

const SECRET = 'hello secret';
const HOSTILE = uniqueName('hello-hostile');
const VICTIM = uniqueName('hello-victim');

let dom0: Dom0;
let scope: Scope;
let victim: Guest;
let pid: number;
let baseline: string[];

before(async () => {
  dom0 = await startDom0({
    guests: [
      { name: HOSTILE, secret: SECRET, exports: [{ name: 'home', path: 'hostile' }] },
      { name: VICTIM, secret: SECRET, exports: [{ name: 'home', path: 'victim' }] },
    ],
    listen: { unix: true },
  });
  scope = new Scope();
  pid = livePid(dom0);
  // One full connection first, so whatever dom0 opens once and keeps (worker threads' descriptors) is in the
  // baseline; then the victim, which stays connected through every test.
  const warm = await connectGuest(dom0, new Scope(), { domain: HOSTILE, secret: SECRET });
  await warm.fs().writeFile('warm', 'x');
  await warm.close();
  victim = await connectGuest(dom0, scope, { domain: VICTIM, secret: SECRET });
  await victim.fs().writeFile('v', 'victim data');
  baseline = openFds(pid);
});

after(async () => {
  try {
    await scope.close();
  } finally {
    await dom0.cleanup();
  }
});

interface Exchange {
  replies: Array<Record<string, unknown>>;
  closed: boolean;
}

/**
 * Connects raw, waits for InitWait, lets `send` misbehave (with the socket's descriptor, for sends that are not
 * JSON), and collects replies until dom0 closes the connection or welcomes it.
 */
async function exchange(send: (conn: ControlConnection, fd: number) => void): Promise<Exchange> {
  const fd = native.connectSeqpacket(dom0.controlPath);
  const conn = new ControlConnection(fd);
  const replies: Array<Record<string, unknown>> = [];
  let closed = false;
  conn.on('message', (m) => {
    for (const f of m.fds) native.closeFd(f);
    replies.push(m.body as Record<string, unknown>);
  });
  conn.on('close', () => {
    closed = true;
  });
  try {
    await waitFor(() => replies.length > 0, 5000, 'InitWait');
    assert.deepEqual(replies.shift(), { type: 'state', state: 'InitWait', version: 1, features: 31 });
    send(conn, fd);
    await waitFor(() => closed || replies.some((r) => r.type === 'welcome'), 5000, 'dom0 to answer');
    return { replies, closed };
  } finally {
    conn.close();
  }
}

/** The exchange ended with one error naming `pattern`, then a close. */
function assertRefused(x: Exchange, pattern: RegExp): void {
  assert.equal(x.closed, true, 'dom0 should close the connection');
  assert.equal(x.replies.length, 1, JSON.stringify(x.replies));
  const [reply] = x.replies;
  assert.equal(reply?.type, 'error');
  assert.equal(reply?.code, 'XENFS_ERR_PROTOCOL');
  assert.match(String(reply?.message), pattern);
}

async function assertServing(): Promise<void> {
  assert.equal(livePid(dom0), pid);
  const gfs = victim.fs();
  assert.equal(await gfs.readFile('v', 'utf8'), 'victim data');
  const fresh = await connectGuest(dom0, scope, { domain: HOSTILE, secret: SECRET });
  await fresh.fs().writeFile('ok', 'fine');
  await fresh.close();
  assert.equal(fs.readFileSync(hostPath(dom0, 'hostile', 'ok'), 'utf8'), 'fine');
}

async function assertNoLeakedFds(): Promise<void> {
  try {
    await waitFor(() => openFds(pid).length <= baseline.length, 5000, 'dom0 to close what it was sent');
  } catch (err) {
    const now = openFds(pid);
    const extra = now.filter((l) => !baseline.includes(l));
    assert.fail(`dom0 holds ${now.length} descriptors, baseline ${baseline.length}; new: ${extra.join(', ')}; ${err}`);
  }
}

const rawBytes = (data: Buffer) => (_conn: ControlConnection, fd: number) => native.sendMessage(fd, data, []);
const json = (body: unknown, fds: number[] = []) => (conn: ControlConnection) => conn.send(body, fds);

const hello = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: 'hello', domain: HOSTILE, secret: SECRET, version: 1, features: 31, transport: 'unix', ...over,
});
const ringLayout = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  memPages: 4096, grantTable: { offset: 0, entries: 64 }, ringRefs: [0], ringSlots: 8, ...over,
});
const ringHello = (ring: Record<string, unknown>): Record<string, unknown> => hello({ transport: 'ring', ring });

test('bytes that are not JSON are refused', async () => {
  const cases: Array<[string, Buffer]> = [
    ['text', Buffer.from('hello, dom0')],
    ['half an object', Buffer.from('{"type":"hello","domain":')],
    ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x80])],
    ['NULs', Buffer.alloc(100)],
  ];
  for (const [what, data] of cases) {
    const x = await exchange(rawBytes(data));
    assert.doesNotThrow(() => assertRefused(x, /not JSON/), what);
  }
  // Nesting deep enough to overflow a recursive parser: V8's is not, so this is simply not a hello.
  assertRefused(await exchange(rawBytes(Buffer.from('['.repeat(32000) + ']'.repeat(32000)))), /expected a hello/);
  // A zero-length datagram reads as end of file: dom0 just closes.
  const empty = await exchange(rawBytes(Buffer.alloc(0)));
  assert.equal(empty.closed, true);
  assert.ok(empty.replies.every((r) => r.type === 'error'));
  await assertNoLeakedFds();
  await assertServing();
});

test('hellos with missing, mistyped or out-of-range fields are refused naming the field', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /expected a hello/],
    [42, /expected a hello/],
    ['hello', /expected a hello/],
    [[hello()], /expected a hello/],
    [{}, /expected a hello/],
    [{ type: 'welcome' }, /expected a hello/],
    [{ type: 'hello' }, /hello\.domain/],
    [hello({ domain: 5 }), /hello\.domain/],
    [hello({ domain: '' }), /hello\.domain/],
    [hello({ domain: 'd'.repeat(65) }), /hello\.domain/],
    [hello({ secret: 7 }), /hello\.secret/],
    [hello({ secret: 's'.repeat(100_00) }), /hello\.secret/],
    [hello({ version: undefined }), /hello\.version/],
    [hello({ version: '1' }), /hello\.version/],
    [hello({ version: 1e300 }), /hello\.version/],
    [hello({ version: 1.5 }), /hello\.version/],
    [hello({ version: 2 }), /protocol version 2 unsupported/],
    [hello({ features: -1 }), /hello\.features/],
    [hello({ features: 2 ** 53 }), /hello\.features/],
    [hello({ features: '31' }), /hello\.features/],
    [hello({ transport: 'pigeon' }), /hello\.transport/],
    [hello({ transport: undefined }), /hello\.transport/],
    [hello({ transport: 'ring' }), /hello\.ring must be an object/],
    [ringHello(ringLayout({ memPages: 2 ** 40 })), /hello\.ring\.memPages/],
    [ringHello(ringLayout({ memPages: -1 })), /hello\.ring\.memPages/],
    [ringHello(ringLayout({ grantTable: null })), /hello\.ring\.grantTable must be an object/],
    [ringHello(ringLayout({ grantTable: { offset: 2 ** 60, entries: 64 } })), /hello\.ring\.grantTable\.offset/],
    [ringHello(ringLayout({ grantTable: { offset: 0, entries: 0 } })), /hello\.ring\.grantTable\.entries/],
    [ringHello(ringLayout({ grantTable: { offset: 0, entries: 1e9 } })), /hello\.ring\.grantTable\.entries/],
    [ringHello(ringLayout({ ringSlots: 12 })), /ringSlots must be a power of two/],
    [ringHello(ringLayout({ ringSlots: 0 })), /hello\.ring\.ringSlots/],
    [ringHello(ringLayout({ ringSlots: 512 })), /hello\.ring\.ringSlots/],
    [ringHello(ringLayout({ ringSlots: 2 ** 52 })), /hello\.ring\.ringSlots/],
    [ringHello(ringLayout({ ringRefs: [] })), /hello\.ring\.ringRefs/],
    [ringHello(ringLayout({ ringRefs: 0 })), /hello\.ring\.ringRefs/],
    [ringHello(ringLayout({ ringRefs: [64] })), /hello\.ring\.ringRefs\[0\]/],
    [ringHello(ringLayout({ ringRefs: [0, -1] })), /hello\.ring\.ringRefs\[1\]/],
    [ringHello(ringLayout({ ringRefs: [0.5] })), /hello\.ring\.ringRefs\[0\]/],
    [ringHello(ringLayout({ ringRefs: ['0'] })), /hello\.ring\.ringRefs\[0\]/],
    [ringHello(ringLayout({ ringRefs: Array.from({ length: 65 }, () => 0) })), /hello\.ring\.ringRefs/],
    // JSON.parse makes "__proto__" an own property; it must not stand in for the fields.
    [JSON.parse('{"type":"hello","__proto__":{"domain":"x","version":1}}'), /hello\.domain/],
  ];
  for (const [body, pattern] of cases) assertRefused(await exchange(json(body)), pattern);
  await assertNoLeakedFds();
  await assertServing();
});

/** Real descriptors of every kind a guest might pass, each a fresh dup the caller sends and then closes. */
function spareFds(n: number, scratch: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) out.push(native.createEventFd());
    else out.push(fs.openSync(scratch, 'r'));
  }
  return out;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) native.closeFd(fd);
}

/** Runs `fn` with freshly made descriptors and closes them afterwards, whatever happens (dom0 has its own copies). */
async function withFds<T>(fds: number[], fn: (fds: number[]) => Promise<T>): Promise<T> {
  try {
    return await fn(fds);
  } finally {
    closeAll(fds);
  }
}

test('a ring hello with 0, 2, 5 or 16 descriptors is refused and its descriptors are closed', async () => {
  const scratch = hostPath(dom0, 'scratch.txt');
  fs.writeFileSync(scratch, 'a file to pass around');
  const ring = new GuestRing({ slots: 8, name: 'hostile-ring' });
  try {
    for (const count of [0, 1, 2, 4, 5, 16]) {
      // Start from the ring's own three, then trim or pad, so the layout and the first descriptors are real.
      const own = ring.remoteFds.map((fd) => dupFd(fd));
      const extra = spareFds(Math.max(0, count - 3), scratch);
      const fds = [...own, ...extra].slice(0, count);
      try {
        const x = await exchange(json(hello({ transport: 'ring', ring: ring.setup }), fds));
        assertRefused(x, new RegExp(`carries 3 descriptors, got ${count}`));
      } finally {
        closeAll([...own, ...extra]);
      }
    }
    // A stream hello has no use for descriptors: dom0 welcomes it and closes them.
    await withFds(spareFds(4, scratch), async (passed) => {
      const x = await exchange(json(hello(), passed));
      assert.equal(x.replies[0]?.type, 'welcome');
    });
    // An unauthenticated ring hello's descriptors are closed as well.
    await withFds(ring.remoteFds.map((fd) => dupFd(fd)), async (own) => {
      const x = await exchange(json({ ...hello({ transport: 'ring', ring: ring.setup }), secret: 'wrong' }, own));
      assertRefused(x, /authentication failed/);
    });
  } finally {
    ring.close(new Error('test over'));
  }
  await assertNoLeakedFds();
  await assertServing();
});

test('ring hellos whose memory or descriptors do not match the layout are refused', async () => {
  const scratch = hostPath(dom0, 'scratch.bin');
  fs.writeFileSync(scratch, Buffer.alloc(4096 * 16));
  const small = new DomainMemory(2, 'hostile-small');
  const ring = new GuestRing({ slots: 8, name: 'hostile-ring2' });
  const [memFd, rx, tx] = ring.remoteFds as [number, number, number];
  try {
    const cases: Array<[string, () => number[], Record<string, unknown>, RegExp]> = [
      ['a 2-page memfd declared as 4096 pages', () => [dupFd(small.fd), dupFd(rx), dupFd(tx)],
        ringLayout({ memPages: 4096 }), /ring setup refused/],
      ['a regular file as memory', () => [fs.openSync(scratch, 'r+'), dupFd(rx), dupFd(tx)],
        ringLayout({ memPages: 16 }), /ring setup refused/],
      ['an eventfd as memory', () => [native.createEventFd(), dupFd(rx), dupFd(tx)],
        ringLayout({ memPages: 16 }), /ring setup refused/],
      ['ring refs never granted', () => [dupFd(memFd), dupFd(rx), dupFd(tx)],
        { ...ring.setup, ringRefs: [ring.setup.grantTable.entries - 1] }, /ring setup refused/],
      ['a grant table past the end of memory', () => [dupFd(memFd), dupFd(rx), dupFd(tx)],
        { ...ring.setup, grantTable: { offset: ring.setup.memPages * 4096, entries: 64 } }, /ring setup refused/],
      ['a grant table at an unaligned offset', () => [dupFd(memFd), dupFd(rx), dupFd(tx)],
        { ...ring.setup, grantTable: { offset: 100, entries: ring.setup.grantTable.entries } }, /ring setup refused/],
    ];
    for (const [what, makeFds, layout, pattern] of cases) {
      await withFds(makeFds(), async (fds) => {
        assertRefused(await exchange(json(ringHello(layout), fds)), pattern);
      }).catch((err: unknown) => {
        throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
      });
    }
  } finally {
    ring.close(new Error('test over'));
    small.close();
  }
  await assertNoLeakedFds();
  await assertServing();
});

test('event channels that are not eventfds are refused (a memfd would read as always ready: a spinning dom0)',
  async () => {
    const scratch = hostPath(dom0, 'scratch-evt.bin');
    fs.writeFileSync(scratch, Buffer.alloc(4096));
    const ring = new GuestRing({ slots: 8, name: 'hostile-ring3' });
    const [memFd, rx, tx] = ring.remoteFds as [number, number, number];
    try {
      const cases: Array<[string, () => number[]]> = [
        ['a memfd to wake dom0', () => [dupFd(memFd), dupFd(memFd), dupFd(tx)]],
        ['a regular file to wake dom0', () => [dupFd(memFd), fs.openSync(scratch, 'r'), dupFd(tx)]],
        ['a memfd to wake the guest', () => [dupFd(memFd), dupFd(rx), dupFd(memFd)]],
        ['a regular file to wake the guest', () => [dupFd(memFd), dupFd(rx), fs.openSync(scratch, 'r+')]],
      ];
      for (const [what, makeFds] of cases) {
        const cpu0 = dom0.cpuSeconds();
        const t0 = performance.now();
        await withFds(makeFds(), async (fds) => {
          const x = await exchange(json(ringHello({ ...ring.setup }), fds));
          if (x.replies[0]?.type === 'welcome') {
            // Accepted: show what it costs dom0 while the guest stays connected.
            await new Promise((r) => setTimeout(r, 200));
            const busy = (dom0.cpuSeconds() - cpu0) / ((performance.now() - t0) / 1000);
            assert.fail(`${what}: welcomed; dom0 used ${(busy * 100).toFixed(0)}% of a CPU meanwhile`);
          }
          assertRefused(x, /ring setup refused: .*event/);
        });
      }
    } finally {
      ring.close(new Error('test over'));
    }
    await assertNoLeakedFds();
    await assertServing();
  });

test('after the welcome, JSON junk and a second hello are ignored; bytes that are not JSON end the session',
  async () => {
    const fd = native.connectSeqpacket(dom0.controlPath);
    const conn = new ControlConnection(fd);
    const replies: Array<Record<string, unknown>> = [];
    let closed = false;
    conn.on('message', (m) => {
      closeAll(m.fds);
      replies.push(m.body as Record<string, unknown>);
    });
    conn.on('close', () => {
      closed = true;
    });
    const scratch = hostPath(dom0, 'scratch-after.txt');
    fs.writeFileSync(scratch, 'x');
    const passed = spareFds(3, scratch);
    try {
      await waitFor(() => replies.length === 1, 5000, 'InitWait');
      conn.send(hello());
      await waitFor(() => replies.length === 2, 5000, 'the welcome');
      assert.equal(replies[1]?.type, 'welcome');
      conn.send(hello({ secret: 'wrong' }));
      conn.send({ type: 'state', state: 'Connected' }, passed);
      conn.send({ garbage: true });
      native.sendMessage(fd, Buffer.from('not json'), []);
      // Messages are handled in order: had any of the JSON ones been refused, its error would come first.
      await waitFor(() => closed, 5000, 'dom0 to close');
      assert.deepEqual(replies.slice(2).map((r) => [r.type, r.message]), [['error', 'control message is not JSON']]);
    } finally {
      closeAll(passed);
      conn.close();
    }
    await assertNoLeakedFds();
    await assertServing();
  });

const HAS_STRACE = spawnSync('strace', ['-V']).status === 0;

// Regression: a refused ring hello's descriptors were closed twice (once by the ring setup, again by the refusal);
// between the two, an engine thread serving another guest may open a file that gets the same number.
test('each descriptor of a refused hello is closed exactly once', { skip: HAS_STRACE ? false : 'needs strace' },
  async () => {
    const log = path.join(dom0.dir, 'strace.txt');
    const tracer = spawn('strace', ['-f', '-e', 'trace=close', '-o', log, '-p', String(pid)], { stdio: 'ignore' });
    const exited = new Promise((r) => tracer.once('exit', r));
    try {
      const tracerPid = (): number => Number(/TracerPid:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      await waitFor(() => tracerPid() !== 0, 5000, 'strace to attach');
      const small = new DomainMemory(2, 'hostile-once');
      const evt = native.createEventFd();
      try {
        const tooSmall = json(ringHello(ringLayout({ memPages: 4096 })), [small.fd, evt, evt]);
        assertRefused(await exchange(tooSmall), /ring setup refused/);
        // dom0 offers no TCP stream here: refused after the descriptors of a stream hello were closed.
        assertRefused(await exchange(json(hello({ transport: 'tcp' }), [evt, evt])), /does not offer the tcp/);
      } finally {
        small.close();
        native.closeFd(evt);
      }
    } finally {
      tracer.kill('SIGINT');
      await exited;
    }
    const doubles = fs.readFileSync(log, 'utf8').split('\n').filter((l) => /close\(\d+\)\s*= -1 EBADF/.test(l));
    assert.deepEqual(doubles, []);
    await assertServing();
  });

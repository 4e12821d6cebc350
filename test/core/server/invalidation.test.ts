// Pushed invalidation (docs/native-frontend.md, "Coherent caching"): a guest whose kernel caches entries and
// attributes for an hour still sees another guest's change at once, because dom0 drops them from its cache before
// the changer's call returns. Guest A works through its ring (a RawGuest); guest B is a kernel FUSE mount served by
// test/helpers/fuse-forwarder.ts, which forwards to dom0 with dom0's node ids and 3600 s timeouts, and logs every
// request it takes. B mounts export `home`, node 2, so every notification also goes through the root id swap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Dom0 } from '../../helpers/dom0.ts';
import { RawGuest } from '../../helpers/raw-guest.ts';
import { Scope, startDom0, waitFor } from '../../helpers/fixtures.ts';
import { type FuseConnection, openFuseConnection } from '../../../core/xen/fuse-kernel.ts';
import { Op, OpenFlag, ResponseFlag } from '../../../core/protocol/opcodes.ts';
import { RspOff } from '../../../core/protocol/layout.ts';

const FORWARDER = new URL('../../helpers/fuse-forwarder.ts', import.meta.url).pathname;
const HOME = 2; // dom0's node for export `home`: B's FUSE_ROOT_ID
const BOUND_MS = 50; // kInvalidationWait in native/src/invalidation.hpp

const guestConfig = (name: string): Record<string, unknown> => ({
  name, secret: 's', exports: [{ name: 'other', path: 'other' }, { name: 'home', path: 'home' }],
});

/** A dom0 serving guests a, b and c on the same two exports, and a cleanup scope closed before dom0 goes. */
async function setup(t: { after: (fn: () => Promise<void>) => void }): Promise<{ dom0: Dom0; scope: Scope; home: string }> {
  const dom0 = await startDom0({ guests: ['a', 'b', 'c'].map(guestConfig) });
  const scope = new Scope();
  t.after(async () => {
    await scope.close();
    await dom0.cleanup();
  });
  return { dom0, scope, home: path.join(dom0.dir, 'home') };
}

/** The FUSE connection number of the mount at `dir` (its st_dev minor), read without touching the mount. */
function connectionNumber(dir: string): number | null {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === dir);
  const dev = line?.split(' ')[2];
  return dev ? Number(dev.split(':')[1]) : null;
}

/**
 * Aborts the FUSE connection of `dir` through fusectl, mounted in a private mount namespace: every request waiting
 * in it fails, so no process (dom0's notifier thread included) stays blocked on a lock its kernel holds.
 */
function abortConnection(dir: string): void {
  const n = connectionNumber(dir);
  if (n === null) return;
  spawnSync('unshare', ['-m', 'sh', '-c', `mount -t fusectl none /sys/fs/fuse/connections && echo 1 > /sys/fs/fuse/connections/${n}/abort`],
    { stdio: 'ignore' });
}

/** Guest B's (or C's) mount, served by a forwarder child process; its log is what the kernel asked of it. */
class ForwardedMount {
  readonly dir: string;
  readonly lines: string[] = [];
  readonly #conn: FuseConnection;
  readonly #child: ChildProcess;
  #sentinels = 0;

  private constructor(dir: string, conn: FuseConnection, child: ChildProcess) {
    this.dir = dir;
    this.#conn = conn;
    this.#child = child;
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
  }

  /** `hold` and `delay` as fuse-forwarder.ts takes them. */
  static async start(
    dom0: Dom0, scope: Scope, domain: string, opts: { hold?: string[]; delay?: Record<string, number> } = {},
  ): Promise<ForwardedMount> {
    const dir = path.join(dom0.dir, `mnt-${domain}`);
    fs.mkdirSync(dir);
    const conn = openFuseConnection(dir);
    const child = spawn(process.execPath, ['--import', 'tsx', FORWARDER,
      JSON.stringify({ controlPath: dom0.controlPath, domain, secret: 's', root: HOME, ...opts })],
    { stdio: ['pipe', 'pipe', 'inherit', conn.fd] });
    const m = new ForwardedMount(dir, conn, child);
    scope.defer(() => m.close());
    await waitFor(() => m.lines.includes('ready') || m.lines.some((l) => l.startsWith('attach-failed')), 15_000, `${domain}'s front end`);
    assert.ok(m.lines.includes('ready'), m.lines.join('\n'));
    return m;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** stat through the mount: the mode, or the errno code. */
  async stat(name: string): Promise<number | string> {
    try {
      return (await fs.promises.lstat(path.join(this.dir, name))).mode;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  }

  /**
   * Where the log stands once everything asked so far is in it: past a sentinel, a lookup of a fresh name made
   * after every earlier call returned (the front end logs in the order it takes requests).
   */
  async mark(): Promise<number> {
    const sentinel = `.sentinel-${++this.#sentinels}`;
    await this.stat(sentinel);
    const line = `LOOKUP ${HOME} ${sentinel}`;
    await waitFor(() => this.lines.includes(line), 5000, `the ${sentinel} lookup`);
    return this.lines.indexOf(line) + 1;
  }

  /** The requests the front end took after mark `from` and before a new mark. */
  async since(from: number): Promise<string[]> {
    return this.lines.slice(from, (await this.mark()) - 1);
  }

  /** Answers the held requests. */
  release(): void {
    this.#child.stdin?.write('release\n');
  }

  async close(): Promise<void> {
    abortConnection(this.dir);
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = new Promise((r) => this.#child.once('exit', r));
      this.#child.kill('SIGKILL');
      await exited;
    }
    this.#conn.close();
  }
}

/** Lookups of `name` in B's root among logged requests. */
const lookups = (lines: string[], name: string): number => lines.filter((l) => l === `LOOKUP ${HOME} ${name}`).length;
/** Attribute requests among logged requests (each names B's node id, which only B's session knows). */
const getattrs = (lines: string[]): number => lines.filter((l) => /^(GETATTR|STATX) /.test(l)).length;
const mode = (m: number | string): number | string => (typeof m === 'number' ? m & 0o170777 : m);

async function lookup(g: RawGuest, parent: number | bigint, name: string): Promise<bigint> {
  const r = await g.call({ op: Op.LOOKUP, node: parent, name1: name });
  assert.equal(r.status, 0, `LOOKUP ${name}`);
  return r.slot.readBigUInt64LE(RspOff.NODE);
}

/** A SETATTR payload changing the mode only. */
function chmodPayload(mode: number): Buffer {
  const p = Buffer.alloc(48);
  p.writeUInt32LE(mode, 0);
  return p;
}

test('B\'s kernel serves a second stat from its cache: the front end is asked once', async (t) => {
  const { dom0, scope, home } = await setup(t);
  fs.writeFileSync(path.join(home, 'f'), 'x');
  const b = await ForwardedMount.start(dom0, scope, 'b');
  const from = await b.mark();
  assert.equal(mode(await b.stat('f')), 0o100644);
  const first = await b.since(from);
  assert.equal(lookups(first, 'f'), 1, first.join(', '));
  const next = await b.mark();
  assert.equal(typeof await b.stat('f'), 'number');
  assert.deepEqual((await b.since(next)).filter((l) => !l.startsWith('FORGET')), [], 'nothing asked the second time');
});

test('A\'s unlink, rename, chmod, setxattr, create and link drop what B\'s kernel cached: B\'s next stat is fresh', async (t) => {
  const { dom0, scope, home } = await setup(t);
  for (const f of ['gone', 'old', 'mode', 'xa', 'linked']) fs.writeFileSync(path.join(home, f), f);
  const a = await RawGuest.connect(dom0.controlPath, 'a', 's');
  scope.defer(() => a.close());
  const b = await ForwardedMount.start(dom0, scope, 'b');
  // B caches every name involved, the missing ones as negative entries, and its stat of each is now free.
  const cached = ['gone', 'old', 'new', 'mode', 'xa', 'made', 'linked', 'link2'];
  const before = new Map<string, number | string>();
  for (const name of cached) before.set(name, await b.stat(name));
  const mark = await b.mark();
  for (const name of cached) assert.equal(await b.stat(name), before.get(name));
  assert.deepEqual((await b.since(mark)).filter((l) => !l.startsWith('FORGET')), [], 'all cached');
  const linkedNode = await lookup(a, HOME, 'linked');
  const modeNode = await lookup(a, HOME, 'mode');
  const xaNode = await lookup(a, HOME, 'xa');

  // Each change, then at once (no waiting, no polling) B's stat: only an invalidation already in B's kernel can
  // make it differ from what B cached an hour's worth of.
  // `attrs`: the change leaves B's name cached and drops only the attributes.
  const cases: Array<{ what: string; change: () => Promise<number>; expect: Record<string, number | string>; attrs?: boolean }> = [
    { what: 'unlink', change: async () => (await a.call({ op: Op.UNLINK, node: HOME, name1: 'gone' })).status, expect: { gone: 'ENOENT' } },
    {
      what: 'rename', change: async () => (await a.call({ op: Op.RENAME, node: HOME, arg64: HOME, name1: 'old', name2: 'new' })).status,
      expect: { old: 'ENOENT', new: 0o100644 },
    },
    {
      what: 'chmod', change: async () => (await a.call({ op: Op.SETATTR, node: modeNode, arg32a: 1, name1: chmodPayload(0o600), name1Len: 0 })).status,
      expect: { mode: 0o100600 }, attrs: true,
    },
    {
      // name `user.x`, value `v`: the value follows the name in the payload
      what: 'setxattr', change: async () => (await a.call({ op: Op.SETXATTR, node: xaNode, name1: 'user.xv', name1Len: 6 })).status,
      expect: { xa: 0o100644 }, attrs: true,
    },
    {
      what: 'create', change: async () => {
        const r = await a.call({ op: Op.CREATE, node: HOME, name1: 'made', arg32a: OpenFlag.O_WRONLY | OpenFlag.O_EXCL, arg32b: 0o640 });
        if (r.status === 0) assert.equal((await a.call({ op: Op.RELEASE, fh: r.slot.readBigUInt64LE(RspOff.FH) })).status, 0);
        return r.status;
      },
      expect: { made: 0o100640 },
    },
    { what: 'link', change: async () => (await a.call({ op: Op.LINK, node: HOME, arg64: linkedNode, name1: 'link2' })).status, expect: { link2: 0o100644 } },
  ];
  for (const c of cases) {
    const from = await b.mark();
    assert.equal(await c.change(), 0, c.what);
    for (const [name, want] of Object.entries(c.expect)) assert.equal(mode(await b.stat(name)), want, `${c.what}: B's stat of ${name}`);
    const lines = await b.since(from);
    for (const name of Object.keys(c.expect)) {
      const asked = c.attrs ? getattrs(lines) : lookups(lines, name);
      assert.ok(asked >= 1, `${c.what}: B's kernel asked the front end again for ${name}: ${lines.join(', ')}`);
    }
  }
});

test('A\'s call waits for a notification that B\'s kernel holds up for less than the bound', async (t) => {
  const { dom0, scope, home } = await setup(t);
  fs.writeFileSync(path.join(home, 'late'), 'x');
  const a = await RawGuest.connect(dom0.controlPath, 'a', 's');
  scope.defer(() => a.close());
  const heldMs = 40;
  assert.ok(heldMs < BOUND_MS);
  const b = await ForwardedMount.start(dom0, scope, 'b', { delay: { MKDIR: heldMs } });
  assert.equal(typeof await b.stat('late'), 'number');
  // B's kernel holds its root directory's lock while its mkdir waits for the front end, for heldMs: dropping the
  // name `late` there waits for it, and so does A's unlink, so that B's stat right after A's reply is fresh. Were
  // the reply to go out first, B's stat would find the name still cached (in the previous test the notifier wins
  // that race anyway: nothing holds it up there).
  const mkdir = spawn('mkdir', [path.join(b.dir, 'slow')], { stdio: 'ignore' });
  const made = new Promise<number | null>((r) => mkdir.once('exit', r));
  await waitFor(() => b.lines.includes(`MKDIR ${HOME} slow`), 5000, 'B\'s mkdir to reach its front end');
  const started = Date.now();
  assert.equal((await a.call({ op: Op.UNLINK, node: HOME, name1: 'late' })).status, 0);
  const waited = Date.now() - started;
  assert.equal(await b.stat('late'), 'ENOENT', 'B saw the unlink as soon as A\'s call returned');
  t.diagnostic(`A's unlink took ${waited} ms`);
  assert.ok(waited < 20 * BOUND_MS, `A's call returned (${waited} ms)`);
  assert.equal(await made, 0);
});

test('a reply says VOLATILE while another guest holds the file open for writing, and not after it releases', async (t) => {
  const { dom0, scope, home } = await setup(t);
  fs.writeFileSync(path.join(home, 'w'), 'x');
  const a = await RawGuest.connect(dom0.controlPath, 'a', 's');
  scope.defer(() => a.close());
  const c = await RawGuest.connect(dom0.controlPath, 'c', 's');
  scope.defer(() => c.close());
  const b = await ForwardedMount.start(dom0, scope, 'b');
  const volatile = (r: { slot: Buffer }): boolean => (r.slot.readUInt32LE(RspOff.FLAGS) & ResponseFlag.VOLATILE) !== 0;
  const nodeA = await lookup(a, HOME, 'w');
  const nodeC = await lookup(c, HOME, 'w');
  assert.equal(volatile(await c.call({ op: Op.GETATTR, node: nodeC })), false, 'nobody writes yet');
  await b.stat('w');
  await b.stat('w');

  const open = await a.call({ op: Op.OPEN, node: nodeA, arg32a: OpenFlag.O_RDWR });
  assert.equal(open.status, 0);
  const fh = open.slot.readBigUInt64LE(RspOff.FH);
  // B had the attributes cached: the open dropped them, and while A writes, B's front end is told not to cache.
  let from = await b.mark();
  await b.stat('w');
  await b.stat('w');
  let lines = await b.since(from);
  assert.equal(getattrs(lines), 2, `both stats asked: ${lines.join(', ')}`);
  for (const r of [await c.call({ op: Op.GETATTR, node: nodeC }), await c.call({ op: Op.LOOKUP, node: HOME, name1: 'w' }),
    await c.call({ op: Op.WALK, node: HOME, name1: 'w', arg32a: 1 })]) {
    assert.equal(volatile(r), true, 'another guest\'s replies are volatile');
  }
  assert.equal(volatile(await a.call({ op: Op.GETATTR, node: nodeA })), false, 'the writer\'s own are not');
  // A read-only open elsewhere changes nothing.
  const ro = await c.call({ op: Op.OPEN, node: nodeC, arg32a: OpenFlag.O_RDONLY });
  assert.equal(volatile(await a.call({ op: Op.GETATTR, node: nodeA })), false);

  assert.equal((await a.call({ op: Op.RELEASE, fh })).status, 0);
  assert.equal((await c.call({ op: Op.RELEASE, fh: ro.slot.readBigUInt64LE(RspOff.FH) })).status, 0);
  assert.equal(volatile(await c.call({ op: Op.GETATTR, node: nodeC })), false, 'not after A released');
  from = await b.mark();
  await b.stat('w');
  await b.stat('w');
  lines = await b.since(from);
  assert.equal(getattrs(lines), 1, `cached again after one ask: ${lines.join(', ')}`);
});

test('two guests making and removing names in one directory at once do not deadlock', async (t) => {
  // Each guest's kernel holds the directory's lock while its mkdir or rmdir waits for dom0, and dom0's answer waits
  // for the notification to the other guest, which needs the other kernel's lock of the same directory. Written
  // synchronously, the first overlap would hang both for ever; bounded, each side waits at most BOUND_MS.
  const { dom0, scope } = await setup(t);
  const b = await ForwardedMount.start(dom0, scope, 'b');
  const c = await ForwardedMount.start(dom0, scope, 'c');
  const rounds = 150;
  const loop = (m: ForwardedMount, tag: string): Promise<{ code: number | null; out: string }> => {
    const script = `const fs = require('fs'); for (let i = 0; i < ${rounds}; i++) { const p = ${JSON.stringify(m.dir)} + '/${tag}' + i; fs.mkdirSync(p); fs.rmdirSync(p); } fs.mkdirSync(${JSON.stringify(m.dir)} + '/${tag}-done');`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    scope.defer(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })));
  };
  // Each has looked at the other's final name: a negative entry only an invalidation can drop.
  assert.equal(await b.stat('c-done'), 'ENOENT');
  assert.equal(await c.stat('b-done'), 'ENOENT');
  const started = Date.now();
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref());
  const both = Promise.all([loop(b, 'b'), loop(c, 'c')]);
  const result = await Promise.race([both, timeout]);
  assert.notEqual(result, 'timeout', 'the two loops finished');
  for (const r of result as Array<{ code: number | null; out: string }>) assert.equal(r.code, 0, r.out);
  const elapsed = Date.now() - started;
  t.diagnostic(`${2 * 2 * rounds} directory changes in ${elapsed} ms`);
  // And the storm lost nothing: each sees the other's last change.
  assert.equal(typeof await b.stat('c-done'), 'number');
  assert.equal(typeof await c.stat('b-done'), 'number');
});

test('a guest whose kernel is stuck holding a directory costs A one bound, and a guest whose connection is gone costs A nothing', async (t) => {
  const { dom0, scope, home } = await setup(t);
  const a = await RawGuest.connect(dom0.controlPath, 'a', 's');
  scope.defer(() => a.close());
  const b = await ForwardedMount.start(dom0, scope, 'b', { hold: ['MKDIR'] });
  // B's mkdir is taken by its front end and held: B's kernel keeps the root directory locked meanwhile.
  assert.equal(await b.stat('seen'), 'ENOENT');
  const stuck = spawn('mkdir', [path.join(b.dir, 'held')], { stdio: 'ignore' });
  scope.defer(() => {
    if (stuck.exitCode === null && stuck.signalCode === null) stuck.kill('SIGKILL');
  });
  await waitFor(() => b.lines.includes(`MKDIR ${HOME} held`), 5000, 'B\'s mkdir to be held');

  const calls = 40;
  let started = Date.now();
  for (let i = 0; i < calls; i++) assert.equal((await a.call({ op: Op.MKNOD, node: HOME, name1: `s${i}`, arg32b: 0o100644 })).status, 0);
  assert.equal((await a.call({ op: Op.MKNOD, node: HOME, name1: 'seen', arg32b: 0o100644 })).status, 0);
  const stuckMs = Date.now() - started;
  t.diagnostic(`${calls + 1} creates next to a stuck guest: ${stuckMs} ms`);
  assert.ok(stuckMs < (calls * BOUND_MS) / 2, `A waited for the stuck guest once, not on every call (${stuckMs} ms)`);

  // Once B's kernel lets go, the queued notifications land: B sees what A made meanwhile.
  b.release();
  await new Promise<void>((r) => stuck.once('exit', () => r()));
  assert.equal(stuck.exitCode, 0);
  await waitFor(async () => typeof await b.stat('seen') === 'number', 5000, 'B to see A\'s file');
  assert.ok(fs.existsSync(path.join(home, 'held')));

  // B's mount goes (its front end keeps its session): its connection is dead, and A's calls do not wait for it.
  spawnSync('umount', ['-l', b.dir]);
  await waitFor(() => b.lines.includes('gone'), 5000, 'B\'s connection to end');
  started = Date.now();
  for (let i = 0; i < calls; i++) {
    assert.equal((await a.call({ op: Op.MKNOD, node: HOME, name1: `g${i}`, arg32b: 0o100644 })).status, 0);
    assert.equal((await a.call({ op: Op.UNLINK, node: HOME, name1: `g${i}` })).status, 0);
  }
  const goneMs = Date.now() - started;
  t.diagnostic(`${2 * calls} changes next to a gone guest: ${goneMs} ms`);
  assert.ok(goneMs < calls * BOUND_MS, `A never waited out the bound (${goneMs} ms)`);
  assert.ok(b.pid !== undefined && !a.closed, 'both guests are still connected');
});

// The dom0 server end to end: a real server process, real guests over real rings and streams. Several guests at
// once, each confined to its own exports; a shared export that stays read-only for everyone; the three transports
// agreeing on one workload; refused guests; a domain that connects twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { XenfsError, errno } from '../../../core/errors.ts';
import type { Guest } from '../../../core/frontend/guest.ts';
import { GuestFs } from '../../../core/frontend/guest-fs.ts';
import { AccessMask, Op, OpenFlag } from '../../../core/protocol/opcodes.ts';
import { ReqOff } from '../../../core/protocol/layout.ts';
import type { Dom0 } from '../../helpers/dom0.ts';
import {
  type Scope, connectGuest, connectRefused, errnoIs, hostPath, isDisconnected, livePid, outcome, rawCall, uniqueName, waitFor,
  withDom0,
} from '../../helpers/fixtures.ts';

const UID = process.getuid?.() ?? 0;
const SECRET = 'correct horse battery staple';

test('several guests at once, each confined to its own export', async () => {
  const [a, b, c] = ['a', 'b', 'c'].map((x) => uniqueName(`confined-${x}`)) as [string, string, string];
  const config = {
    guests: [
      { name: a, secret: SECRET, exports: [{ name: 'home', path: 'a' }] },
      { name: b, secret: SECRET, exports: [{ name: 'home', path: 'b' }] },
      { name: c, uid: UID, exports: [{ name: 'home', path: 'c' }] },
    ],
  };
  await withDom0(config, async (dom0, scope) => {
    fs.writeFileSync(hostPath(dom0, 'b', 'secret.txt'), 'B-SECRET');
    // Left by dom0's administrator inside A's export, pointing at B's: dom0 must never follow it for A.
    fs.symlinkSync(hostPath(dom0, 'b'), hostPath(dom0, 'a', 'host-dir-link'));
    fs.symlinkSync(hostPath(dom0, 'b', 'secret.txt'), hostPath(dom0, 'a', 'host-file-link'));
    const ga = await connectGuest(dom0, scope, { domain: a, secret: SECRET });
    const gb = await connectGuest(dom0, scope, { domain: b, secret: SECRET });
    const gc = await connectGuest(dom0, scope, { domain: c });
    for (const g of [ga, gb, gc]) assert.deepEqual(g.exports, [{ name: 'home', node: 1, readOnly: false }]);

    // B holds a lookup on its secret; the node id means nothing in A's session.
    const held = await rawCall(gb.transport, { op: Op.WALK, node: 1n, name1: 'secret.txt' });
    assert.equal(held.status, 0);
    for (const node of [held.node, 2n, 3n, 1000n, (1n << 32n) + 1n]) {
      const r = await rawCall(ga.transport, { op: Op.OPEN, node, arg32a: OpenFlag.O_RDONLY });
      assert.equal(r.status, -errno('ESTALE'), `OPEN of node ${node} in A's session`);
      const lost = new GuestFs(ga.transport, node);
      await assert.rejects(lost.stat(''), errnoIs('ESTALE'));
    }

    // Concurrent work with the same names: each guest sees only its own.
    const fsA = ga.fs();
    const fsB = gb.fs();
    const fsC = gc.fs();
    await Promise.all([fsA, fsB, fsC].flatMap((gfs, i) =>
      Array.from({ length: 20 }, (_, j) => gfs.writeFile(`same-${j}.txt`, `guest ${i} file ${j}`))));
    for (const [i, [gfs, dir]] of ([[fsA, 'a'], [fsB, 'b'], [fsC, 'c']] as const).entries()) {
      for (let j = 0; j < 20; j += 7) {
        assert.equal(await gfs.readFile(`same-${j}.txt`, 'utf8'), `guest ${i} file ${j}`);
        assert.equal(fs.readFileSync(hostPath(dom0, dir, `same-${j}.txt`), 'utf8'), `guest ${i} file ${j}`);
      }
    }
    assert.ok(!(await fsA.readdir('')).includes('secret.txt'));
    assert.deepEqual((await fsA.readdir('..')).sort(), (await fsA.readdir('')).sort());

    // Paths that climb: the client keeps '..' and absolute paths inside the export, so they name A's own files.
    const bPath = hostPath(dom0, 'b', 'secret.txt');
    for (const p of ['../b/secret.txt', '/../b/secret.txt', '../../../../b/secret.txt', bPath]) {
      await assert.rejects(fsA.readFile(p), errnoIs('ENOENT'), p);
    }
    // dom0-side symlinks and guest-made ones resolve inside A's export, never to B's files.
    await assert.rejects(fsA.readFile('host-dir-link/secret.txt'), errnoIs('ENOENT'));
    await assert.rejects(fsA.readFile('host-file-link'), errnoIs('ENOENT'));
    await fsA.symlink('../b', 'up-link');
    await fsA.symlink(hostPath(dom0, 'b'), 'abs-link');
    await assert.rejects(fsA.readFile('up-link/secret.txt'), errnoIs('ENOENT'));
    await assert.rejects(fsA.readFile('abs-link/secret.txt'), errnoIs('ENOENT'));
    await assert.rejects(fsA.writeFile('abs-link/planted.txt', 'x'), errnoIs('ENOENT'));

    // The same paths as raw WALKs, which the server itself must confine (RESOLVE_BENEATH | NO_SYMLINKS).
    const walk = (name1: string, patch?: (slot: Buffer) => void) =>
      rawCall(ga.transport, { op: Op.WALK, node: 1n, name1 }, patch);
    assert.equal((await walk('../b/secret.txt')).status, -errno('EXDEV'));
    assert.equal((await walk('host-dir-link/secret.txt')).status, -errno('ELOOP'));
    assert.equal((await walk('up-link/secret.txt')).status, -errno('ELOOP'));
    // An absolute path, which the encoder refuses to build: write a relative one and turn its first byte into '/'.
    const absolute = await walk(`x${bPath.slice(1)}`, (slot) => slot.write('/', ReqOff.INLINE, 'latin1'));
    assert.ok(absolute.status < 0, `absolute WALK answered ${absolute.status}`);
    // The symlink's own node is A's to hold, but opening it must not follow it to B's file.
    const linkNode = await walk('host-file-link');
    assert.equal(linkNode.status, 0);
    const opened = await rawCall(ga.transport, { op: Op.OPEN, node: linkNode.node, arg32a: OpenFlag.O_RDONLY });
    assert.equal(opened.status, -errno('ELOOP'));

    assert.equal(fs.readFileSync(bPath, 'utf8'), 'B-SECRET');
    assert.deepEqual(fs.readdirSync(hostPath(dom0, 'b')).filter((n) => !n.startsWith('same-')), ['secret.txt']);
    assert.equal(await fsB.readFile('secret.txt', 'utf8'), 'B-SECRET');
  });
});

test('a shared export is read-only for every guest that has it', async () => {
  const [a, b] = [uniqueName('shared-a'), uniqueName('shared-b')];
  const config = {
    exports: { pub: { path: 'pub' } },
    guests: [
      { name: a, secret: SECRET, exports: [{ name: 'home', path: 'a' }, 'pub'] },
      { name: b, secret: SECRET, exports: ['pub', { name: 'home', path: 'b' }] },
    ],
  };
  await withDom0(config, async (dom0, scope) => {
    const readme = hostPath(dom0, 'pub', 'readme.txt');
    fs.writeFileSync(readme, 'shared text');
    fs.mkdirSync(hostPath(dom0, 'pub', 'dir'));
    fs.writeFileSync(hostPath(dom0, 'a', 'mine.txt'), 'A owns this');
    const before = fs.statSync(readme);
    const ga = await connectGuest(dom0, scope, { domain: a, secret: SECRET });
    const gb = await connectGuest(dom0, scope, { domain: b, secret: SECRET });
    assert.deepEqual(ga.exports, [{ name: 'home', node: 1, readOnly: false }, { name: 'pub', node: 2, readOnly: true }]);
    assert.deepEqual(gb.exports, [{ name: 'pub', node: 1, readOnly: true }, { name: 'home', node: 2, readOnly: false }]);
    const pubA = ga.fs('pub');
    const pubB = gb.fs('pub');

    assert.equal(await pubA.readFile('readme.txt', 'utf8'), 'shared text');
    assert.equal(await pubB.readFile('readme.txt', 'utf8'), 'shared text');
    assert.equal((await pubA.stat('readme.txt')).ino, (await pubB.stat('readme.txt')).ino);
    // One copy: dom0's change is what both see next.
    fs.appendFileSync(readme, ', amended');
    assert.equal(await pubA.readFile('readme.txt', 'utf8'), 'shared text, amended');
    assert.equal(await pubB.readFile('readme.txt', 'utf8'), 'shared text, amended');
    const amended = fs.statSync(readme);

    for (const pub of [pubA, pubB]) {
      const refused: Array<[string, () => Promise<unknown>]> = [
        ['writeFile existing', () => pub.writeFile('readme.txt', 'overwritten')],
        ['writeFile new', () => pub.writeFile('new.txt', 'x')],
        ['appendFile', () => pub.appendFile('readme.txt', 'x')],
        ['open r+', () => pub.open('readme.txt', 'r+')],
        ['truncate', () => pub.truncate('readme.txt', 0)],
        ['unlink', () => pub.unlink('readme.txt')],
        ['rmdir', () => pub.rmdir('dir')],
        ['mkdir', () => pub.mkdir('newdir')],
        ['chmod', () => pub.chmod('readme.txt', 0o777)],
        ['utimes', () => pub.utimes('readme.txt', 0, 0)],
        ['setxattr', () => pub.setxattr('readme.txt', 'user.tag', 'x')],
        ['removexattr', () => pub.removexattr('readme.txt', 'user.tag')],
        ['rename within', () => pub.rename('readme.txt', 'moved.txt')],
        ['symlink', () => pub.symlink('readme.txt', 'link')],
        ['link', () => pub.link('readme.txt', 'hard')],
        ['mknod', () => pub.mknod('fifo', 0o10644)],
        ['access W_OK', () => pub.access('readme.txt', AccessMask.W_OK)],
      ];
      for (const [what, call] of refused) await assert.rejects(call(), errnoIs('EROFS'), what);
    }
    // Reading through an open handle still works, and a read-only handle cannot be written.
    const h = await pubA.open('readme.txt', 'r');
    try {
      const buf = Buffer.alloc(6);
      assert.equal((await h.read(buf, 0, 6, 0)).bytesRead, 6);
      assert.equal(buf.toString(), 'shared');
    } finally {
      await h.close();
    }

    // Renames between A's own export and the shared one: refused (EXDEV, as Linux refuses renames across mounts
    // before it looks at read-only-ness), and nothing moves.
    const into = await rawCall(ga.transport, { op: Op.RENAME, node: 1n, name1: 'mine.txt', arg64: 2n, name2: 'mine.txt' });
    assert.equal(into.status, -errno('EXDEV'));
    const outOf = await rawCall(ga.transport, {
      op: Op.RENAME, node: 2n, name1: 'readme.txt', arg64: 1n, name2: 'stolen.txt',
    });
    assert.equal(outOf.status, -errno('EXDEV'));

    const after = fs.statSync(readme);
    assert.equal(fs.readFileSync(readme, 'utf8'), 'shared text, amended');
    assert.equal(after.mode, before.mode);
    assert.equal(after.mtimeMs, amended.mtimeMs);
    assert.deepEqual(fs.readdirSync(hostPath(dom0, 'pub')).sort(), ['dir', 'readme.txt']);
    assert.deepEqual(fs.readdirSync(hostPath(dom0, 'a')), ['mine.txt']);
    // Each guest's own export is still writable.
    await ga.fs('home').writeFile('ok.txt', 'a');
    await gb.fs('home').writeFile('ok.txt', 'b');
    assert.equal(fs.readFileSync(hostPath(dom0, 'b', 'ok.txt'), 'utf8'), 'b');
  });
});

// A small script touching every kind of reply (entries, attrs, data, readdir, errors), as data to compare.
async function workload(gfs: GuestFs): Promise<unknown[]> {
  const out: unknown[] = [];
  const note = async (p: Promise<unknown>): Promise<void> => {
    out.push(await outcome(p));
  };
  await note(gfs.mkdir('d/e/f', { recursive: true }));
  await note(gfs.writeFile('d/file.txt', 'hello world'));
  await note(gfs.appendFile('d/file.txt', '!'));
  await note(gfs.readFile('d/file.txt', 'utf8'));
  const big = Buffer.alloc(300_000, 7);
  big.write('marker', 200_000);
  await note(gfs.writeFile('big.bin', big));
  const back = await gfs.readFile('big.bin');
  out.push(back.length, back.toString('latin1', 200_000, 200_006), back.equals(big));
  const h = await gfs.open('d/file.txt', 'r+');
  try {
    await note(h.write(Buffer.from('HELLO'), 0, 5, 0).then((r) => r.bytesWritten));
    const buf = Buffer.alloc(32);
    const { bytesRead } = await h.read(buf, 0, 32, 0);
    out.push(buf.toString('utf8', 0, bytesRead));
  } finally {
    await h.close();
  }
  await note(gfs.symlink('file.txt', 'd/link'));
  await note(gfs.readlink('d/link'));
  await note(gfs.readFile('d/link', 'utf8'));
  await note(gfs.rename('d/file.txt', 'd/e/renamed.txt'));
  await note(gfs.stat('d/e/renamed.txt').then((s) => [s.isFile(), s.size, s.mode & 0o777]));
  await note(gfs.truncate('d/e/renamed.txt', 3));
  await note(gfs.readFile('d/e/renamed.txt', 'utf8'));
  await note(gfs.readdir('d').then((n) => n.sort()));
  await note(gfs.readdir('d/e').then((n) => n.sort()));
  await note(gfs.readFile('missing', 'utf8'));
  await note(gfs.mkdir('d'));
  await note(gfs.rmdir('d/e'));
  await note(gfs.unlink('d/e/renamed.txt'));
  await note(gfs.unlink('d/e/renamed.txt'));
  await note(gfs.stat('d/link').then((s) => s.size));
  return out;
}

const EXPECTED_WORKLOAD: unknown[] = [
  'd', undefined, undefined, 'hello world!', undefined, 300_000, 'marker', true, 5, 'HELLO world!', undefined,
  'file.txt', 'HELLO world!', undefined, [true, 12, 0o666], undefined, 'HEL', ['e', 'link'], ['f', 'renamed.txt'],
  { error: 'ENOENT' }, { error: 'EEXIST' }, { error: 'ENOTEMPTY' }, undefined, { error: 'ENOENT' },
  { error: 'ENOENT' },
];

test('ring, UNIX and TCP transports give the same results for one workload', async () => {
  const kinds = ['ring', 'unix', 'tcp'] as const;
  const names = kinds.map((k) => uniqueName(`transport-${k}`));
  const config = {
    listen: { unix: true, tcp: { host: '127.0.0.1', port: 0 } },
    guests: names.map((name, i) => ({ name, secret: SECRET, exports: [{ name: 'home', path: kinds[i] }] })),
  };
  await withDom0(config, async (dom0, scope) => {
    const guests = await Promise.all(kinds.map((transport, i) =>
      connectGuest(dom0, scope, { domain: names[i] as string, secret: SECRET, transport })));
    const transcripts = await Promise.all(guests.map((g) => workload(g.fs())));
    for (const [i, t] of transcripts.entries()) assert.deepEqual(t, EXPECTED_WORKLOAD, kinds[i]);
    const trees = kinds.map((k) => fs.readdirSync(hostPath(dom0, k), { recursive: true }).map(String).sort());
    assert.deepEqual(trees[0], ['big.bin', 'd', 'd/e', 'd/e/f', 'd/link']);
    assert.deepEqual(trees[1], trees[0]);
    assert.deepEqual(trees[2], trees[0]);
    // Each guest really travelled by the transport it asked for.
    const connected = dom0.logs().filter((l) => l.msg === 'guest connected');
    for (const [i, name] of names.entries()) {
      assert.deepEqual(connected.filter((l) => l.domain === name).map((l) => l.transport), [kinds[i]]);
    }
  });
});

async function expectRefused(dom0: Dom0, domain: string, secret?: string): Promise<void> {
  const err = await connectRefused(dom0, { domain, ...(secret === undefined ? {} : { secret }) });
  assert.ok(err instanceof XenfsError, String(err));
  assert.equal(err.code, 'XENFS_ERR_PROTOCOL');
  assert.match(err.message, /authentication failed/, `${domain} with secret ${String(secret)}`);
}

test('a guest with a wrong secret, an unknown domain or the wrong uid is refused; others go on', async () => {
  const good = uniqueName('auth-good');
  const byUid = uniqueName('auth-uid');
  const wrongUid = uniqueName('auth-wronguid');
  const config = {
    guests: [
      { name: good, secret: SECRET, exports: [{ name: 'home', path: 'good' }] },
      { name: byUid, uid: UID, exports: [{ name: 'home', path: 'uid' }] },
      { name: wrongUid, uid: UID + 1, exports: [{ name: 'home', path: 'wronguid' }] },
    ],
  };
  await withDom0(config, async (dom0, scope) => {
    const pid = livePid(dom0);
    const g = await connectGuest(dom0, scope, { domain: good, secret: SECRET });
    const gfs = g.fs();
    await gfs.writeFile('alive.txt', '0');
    const attempts: Array<[string, string | undefined]> = [
      [good, 'wrong secret'],
      [good, undefined],
      [good, ''],
      [uniqueName('auth-unknown'), SECRET],
      [wrongUid, undefined],
      [wrongUid, SECRET],
    ];
    for (const [i, [domain, secret]] of attempts.entries()) {
      await expectRefused(dom0, domain, secret);
      // The refused hello did not touch the session already serving that name.
      await gfs.writeFile('alive.txt', String(i + 1));
      assert.equal(await gfs.readFile('alive.txt', 'utf8'), String(i + 1));
    }
    assert.equal(g.state, 'Connected');
    assert.equal(g.connections, 1);
    const u = await connectGuest(dom0, scope, { domain: byUid });
    await u.fs().writeFile('x', 'y');
    assert.equal(fs.readFileSync(hostPath(dom0, 'uid', 'x'), 'utf8'), 'y');
    assert.equal(livePid(dom0), pid);
    const refusals = dom0.logs().filter((l) => l.msg === 'guest refused');
    assert.equal(refusals.length, attempts.length);
    assert.ok(fs.readdirSync(hostPath(dom0, 'wronguid')).length === 0);
  });
});

async function openAll(gfs: GuestFs, n: number, prefix: string, scope: Scope) {
  const handles = [];
  for (let i = 0; i < n; i++) {
    const h = await gfs.open(`${prefix}-${i}`, 'w+');
    scope.defer(() => h.close().catch(() => {}));
    handles.push(h);
  }
  return handles;
}

test('a second connection of the same domain replaces the first', async () => {
  const name = uniqueName('replaced');
  const config = {
    guests: [{ name, secret: SECRET, exports: [{ name: 'home', path: 'home' }], limits: { maxHandles: 4 } }],
  };
  await withDom0(config, async (dom0, scope) => {
    // Reconnecting by default, and quickly: a replaced guest must still not come back and evict the new one.
    const first: Guest = await connectGuest(dom0, scope, { domain: name, secret: SECRET, waitMs: 0, reconnectDelayMs: 1 });
    const fs1 = first.fs();
    const [h1] = await openAll(fs1, 4, 'first', scope);
    assert.ok(h1);
    await h1.write(Buffer.from('from first'), 0, 10, 0);
    const second = await connectGuest(dom0, scope, { domain: name, secret: SECRET });
    await waitFor(() => first.state === 'Closed', 5000, 'the first connection to close');
    await assert.rejects(fs1.stat(''), isDisconnected);
    await assert.rejects(h1.read(Buffer.alloc(4), 0, 4, 0), isDisconnected);
    await assert.rejects(fs1.writeFile('late.txt', 'x'), isDisconnected);
    assert.equal(first.connections, 1);

    const fs2 = second.fs();
    assert.equal(await fs2.readFile('first-0', 'utf8'), 'from first');
    // Enough round trips for many of the first guest's reconnection attempts, had it made any.
    for (let i = 0; i < 100; i++) await fs2.stat('');
    assert.equal(first.state, 'Closed');
    // The first connection's four handles were released with it: the second has the whole limit.
    await openAll(fs2, 4, 'second', scope);
    await assert.rejects(fs2.open('one-too-many', 'w'), errnoIs('EMFILE'));
    assert.ok(!fs.existsSync(hostPath(dom0, 'home', 'late.txt')));
    assert.equal(second.state, 'Connected');
    const replaced = dom0.logs().filter((l) => l.msg === 'guest disconnected' && l.domain === name);
    assert.deepEqual(replaced.map((l) => l.reason), ['replaced by a new connection of the same domain']);
  });
});

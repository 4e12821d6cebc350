// Backing files for FUSE passthrough, registered by dom0 on a guest's attached connection at OPEN. The guest side
// here is a hand-written FUSE server (test/helpers/fuse-double.ts) that attaches whatever backing ids it likes to
// its files: what it reads and writes through the mount shows what the kernel lets a guest front end do with
// them, and that file data never passes through the front end (nor dom0) after the open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsServer } from '../../../core/server/server.ts';
import { parseConfig } from '../../../core/config/config.ts';
import { silentLogger } from '../../../core/util/log.ts';
import { RawGuest } from '../../helpers/raw-guest.ts';
import { waitFor } from '../../helpers/fixtures.ts';
import { openFuseConnection } from '../../../core/xen/fuse-kernel.ts';
import { Op, RequestFlag, ResponseFlag } from '../../../core/protocol/opcodes.ts';
import { RspOff } from '../../../core/protocol/layout.ts';

const DOUBLE = new URL('../../helpers/fuse-double.ts', import.meta.url).pathname;
const O_RDONLY = 0;
const O_RDWR = 2;

/** WALK to `name` and OPEN it with `flags`, asking for a backing file: the handle and what dom0 answered. */
async function openBacked(guest: RawGuest, name: string, flags: number, want = true, root = 1): Promise<{ fh: bigint; backing: number | null }> {
  const walk = await guest.call({ op: Op.WALK, node: root, name1: name });
  assert.equal(walk.status, 0, `WALK ${name}`);
  const node = walk.slot.readBigUInt64LE(RspOff.NODE);
  const open = await guest.call({ op: Op.OPEN, node, arg32a: flags, flags: want ? RequestFlag.WANT_BACKING : 0 });
  assert.equal(open.status, 0, `OPEN ${name}`);
  const backed = (open.slot.readUInt32LE(RspOff.FLAGS) & ResponseFlag.BACKING) !== 0;
  return { fh: open.slot.readBigUInt64LE(RspOff.FH), backing: backed ? open.slot.readInt32LE(RspOff.BACKING_ID) : null };
}

// Export 2 is read-only: what the guest may only read is registered through a read-only mount.
const PUB = 2;

test('dom0 registers backing files at OPEN: read-only ones cannot be written through, writable ones can, and data bypasses the front end', async (t) => {
  // dom0 runs in this process (its engine threads serve the ring; the mount is served by the child below), so
  // the test can read its per-guest counters.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-fuse-backing-'));
  const home = path.join(scratch, 'home');
  fs.mkdirSync(home);
  fs.mkdirSync(path.join(scratch, 'pub'));
  fs.writeFileSync(path.join(scratch, 'pub', 'ro'), 'read-only contents');
  fs.writeFileSync(path.join(home, 'rw'), 'writable contents');
  const server = new XenfsServer(parseConfig({
    stateDir: 'state', guests: [{ name: 'fb', secret: 's', exports: [
      { name: 'home', path: 'home' }, { name: 'pub', path: 'pub', readOnly: true },
    ] }],
  }, path.join(scratch, 'xenfs.json')), silentLogger);
  server.start();
  const backingFiles = (): number | undefined => server.guestStats('fb')?.backingFiles;
  const mnt = path.join(scratch, 'mnt');
  fs.mkdirSync(mnt);
  const conn = openFuseConnection(mnt);
  let double: ReturnType<typeof spawn> | null = null;
  t.after(async () => {
    if (double && double.exitCode === null) double.kill('SIGKILL');
    conn.close();
    await server.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });
  if (!conn.passthrough) {
    // Not this kernel: without passthrough dom0 must not hand out backing ids, and opens still work.
    const guest = await RawGuest.connect(server.controlPath, 'fb', 's');
    assert.equal((await openBacked(guest, 'ro', O_RDONLY, true, PUB)).backing, null);
    guest.close();
    return;
  }
  const guest = await RawGuest.connect(server.controlPath, 'fb', 's');
  // Before attaching, there is nothing to register on: the open stands without a backing id.
  assert.equal((await openBacked(guest, 'ro', O_RDONLY, true, PUB)).backing, null);
  assert.equal((await guest.fuseAttach([conn.fd], 1)).ok, true);
  const ro = await openBacked(guest, 'ro', O_RDONLY, true, PUB);
  // A read-only open of a file the guest may write shares one registration with the file's writable opens: the
  // kernel takes one backing file per inode.
  const rwReader = await openBacked(guest, 'rw', O_RDONLY);
  const rw = await openBacked(guest, 'rw', O_RDWR);
  assert.equal((await openBacked(guest, 'ro', O_RDONLY, false, PUB)).backing, null, 'only when asked');
  assert.ok(ro.backing !== null && ro.backing > 0, 'a backing id for the read-only file');
  assert.ok(rw.backing !== null && rw.backing > 0 && rw.backing !== ro.backing, 'another for the writable one');
  assert.equal(rwReader.backing, rw.backing, 'one registration per file');
  assert.equal(backingFiles(), 2);
  assert.equal((await guest.call({ op: Op.RELEASE, fh: rwReader.fh })).status, 0);
  assert.equal(backingFiles(), 2, 'the registration stays while another handle uses it');

  // The guest front end: files `ro` and `rw` backed by those ids, and `evil`, a writable name it backs with the
  // read-only id on purpose.
  const files = [
    { name: 'ro', size: 18, backingId: ro.backing },
    { name: 'rw', size: 17, backingId: rw.backing },
    { name: 'evil', size: 18, backingId: ro.backing },
  ];
  double = spawn(process.execPath, ['--import', 'tsx', DOUBLE, JSON.stringify({ files })],
    { stdio: ['ignore', 'pipe', 'inherit', conn.fd] });
  let out = '';
  double.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => double?.once('exit', r));

  // Reads of both come straight from dom0's files; the front end answers READ with EIO, so it never saw one.
  assert.equal(fs.readFileSync(path.join(mnt, 'ro'), 'utf8'), 'read-only contents');
  assert.equal(fs.readFileSync(path.join(mnt, 'rw'), 'utf8'), 'writable contents');
  // A write through the writable id lands in dom0's file.
  const w = fs.openSync(path.join(mnt, 'rw'), 'r+');
  fs.writeSync(w, 'WRITABLE', 0);
  fs.closeSync(w);
  assert.equal(fs.readFileSync(path.join(home, 'rw'), 'utf8'), 'WRITABLE contents');
  // The read-only id cannot be written through, under its own name or another: the open for writing fails.
  for (const name of ['ro', 'evil']) {
    assert.throws(() => fs.openSync(path.join(mnt, name), 'r+'), (err: NodeJS.ErrnoException) => {
      assert.ok(['EROFS', 'EIO', 'EACCES', 'EPERM'].includes(err.code ?? ''), `${name}: ${err.code}`);
      return true;
    });
  }
  assert.equal(fs.readFileSync(path.join(scratch, 'pub', 'ro'), 'utf8'), 'read-only contents', 'dom0\'s file is unchanged');

  double.kill('SIGKILL');
  await exited;
  const ops: Record<string, number> = {};
  for (const op of out.split('\n').filter(Boolean)) ops[op] = (ops[op] ?? 0) + 1;
  assert.ok((ops.OPEN ?? 0) >= 3, `the front end saw the opens (${JSON.stringify(ops)})`);
  assert.equal(ops.READ, undefined, 'no READ reached the front end');
  assert.equal(ops.WRITE, undefined, 'no WRITE reached the front end');

  // RELEASE drops the handle and its registration; a second RELEASE is EBADF, as for any handle.
  assert.equal((await guest.call({ op: Op.RELEASE, fh: ro.fh })).status, 0);
  assert.equal(backingFiles(), 1, 'RELEASE dropped its registration');
  assert.equal((await guest.call({ op: Op.RELEASE, fh: ro.fh })).status, -9);
  assert.equal(backingFiles(), 1);
  guest.close();
  // The guest going away drops the rest (and dom0's copy of its connection) with its session.
  await waitFor(() => server.guestStats('fb') === null, 5000, 'the session to end');
});

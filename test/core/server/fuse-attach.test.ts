// fuse-attach: a guest hands dom0 its FUSE connection over the control channel. dom0 checks the descriptor is
// /dev/fuse before keeping it, keeps one per guest, refuses anything else without ending the session, and lets go
// of it when the guest goes away (a kept copy would keep a departed guest's connection, and its files, alive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';
import { RawGuest } from '../../helpers/raw-guest.ts';
import { openFds, waitFor } from '../../helpers/fixtures.ts';
import { openFuseConnection } from '../../../core/xen/fuse-kernel.ts';

const fdCount = (pid: number): number => openFds(pid).length;

test('fuse-attach: dom0 keeps one checked /dev/fuse per guest, mounted on one of its export roots, refuses the rest, and lets go when the guest leaves', async (t) => {
  const dom0 = await Dom0.start({ config: { guests: [{ name: 'fa', secret: 's', exports: [{ name: 'home', path: 'home' }] }] } });
  fs.mkdirSync(path.join(dom0.dir, 'home'));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-fuse-attach-'));
  const mnt = path.join(scratch, 'mnt');
  fs.mkdirSync(mnt);
  const conn = openFuseConnection(mnt);
  let guest: RawGuest | null = null;
  t.after(async () => {
    if (guest && !guest.closed) guest.close();
    conn.close();
    await dom0.cleanup();
    fs.rmSync(scratch, { recursive: true, force: true });
  });
  const pid = dom0.pid as number;
  const before = fdCount(pid);
  guest = await RawGuest.connect(dom0.controlPath, 'fa', 's');
  await waitFor(() => fdCount(pid) > before, 5000, 'dom0 to take the ring');
  const connected = fdCount(pid);

  // The root must be one of the guest's export roots (it has one: node 1); anything else is refused, and the
  // descriptor with it.
  for (const root of [undefined, 0, 2, 1.5, '1', -1]) {
    const bad = await guest.fuseAttach([conn.fd], root);
    assert.deepEqual([bad.ok, bad.code], [false, 'EINVAL'], `root ${String(root)}`);
    assert.match(bad.message ?? '', /fuse-attach\.root/);
  }
  assert.equal(fdCount(pid), connected, 'refused descriptors are not kept');

  assert.deepEqual(await guest.fuseAttach([conn.fd], 1), { type: 'fuse-attach', ok: true });
  assert.equal(fdCount(pid), connected + 1, 'dom0 holds one copy of the connection');

  const again = await guest.fuseAttach([conn.fd], 1);
  assert.equal(again.ok, false);
  assert.equal(again.code, 'EBUSY');
  const devNull = fs.openSync('/dev/null', 'r');
  const file = fs.openSync(path.join(dom0.dir, 'home'), 'r');
  try {
    const notFuse = await guest.fuseAttach([devNull], 1);
    assert.deepEqual([notFuse.ok, notFuse.code], [false, 'ENODEV']);
    assert.match(notFuse.message ?? '', /not \/dev\/fuse/);
    assert.deepEqual([(await guest.fuseAttach([file], 1)).code, (await guest.fuseAttach([], 1)).code, (await guest.fuseAttach([devNull, file], 1)).code],
      ['ENODEV', 'EINVAL', 'EINVAL']);
  } finally {
    fs.closeSync(devNull);
    fs.closeSync(file);
  }
  assert.equal(fdCount(pid), connected + 1, 'every refused descriptor was closed by dom0');
  assert.equal(guest.closed, false, 'refusals do not end the session');
  const reply = await guest.call({ op: 3 /* GETATTR */, node: 1 });
  assert.equal(reply.status, 0, 'and the guest is still served');

  guest.close();
  await waitFor(() => fdCount(pid) === before, 5000, 'dom0 to close the departed guest\'s descriptors, its FUSE connection included');
});

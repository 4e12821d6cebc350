// Per-guest identity: dom0 acts as the guest's configured host user for its file operations (the kernel checks
// permissions and assigns ownership as for that user), and owners are shown to the guest through its id map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';
import { Guest } from '../../../core/frontend/guest.ts';

const OWNER = 4242;
const idMap = {
  uid: [{ guest: 0, host: OWNER, count: 1 }, { guest: 1000, host: 5000, count: 10 }],
  gid: [{ guest: 0, host: OWNER, count: 1 }, { guest: 1000, host: 5000, count: 10 }],
};

test('a guest with an owner creates files as that user, sees owners through its map, and gets no capabilities', async () => {
  const dom0 = await Dom0.start({
    config: {
      guests: [
        { name: 'mapped', secret: 'm', exports: [{ name: 'e', path: 'e' }], owner: { uid: OWNER, gid: OWNER }, idMap },
        { name: 'plain', secret: 'p', exports: [{ name: 'e', path: 'e' }] },
      ],
    },
  });
  const exp = path.join(dom0.dir, 'e');
  fs.mkdirSync(exp);
  fs.chownSync(exp, OWNER, OWNER);
  fs.writeFileSync(path.join(exp, 'theirs'), 'private to host user 5003');
  fs.chownSync(path.join(exp, 'theirs'), 5003, 5003);
  fs.chmodSync(path.join(exp, 'theirs'), 0o600);
  fs.writeFileSync(path.join(exp, 'stranger'), 'owned by an unmapped user');
  fs.chownSync(path.join(exp, 'stranger'), 7777, 7777);
  const mapped = await Guest.connect({ controlPath: dom0.controlPath, domain: 'mapped', secret: 'm' });
  const plain = await Guest.connect({ controlPath: dom0.controlPath, domain: 'plain', secret: 'p' });
  try {
    const f = mapped.fs();
    await f.writeFile('mine', 'hello');
    const host = fs.statSync(path.join(exp, 'mine'));
    assert.deepEqual([host.uid, host.gid], [OWNER, OWNER], 'created as the owner on the host');
    const st = await f.stat('mine');
    assert.deepEqual([st.uid, st.gid], [0, 0], 'the owner is root inside the guest');
    const theirs = await f.stat('theirs');
    assert.deepEqual([theirs.uid, theirs.gid], [1003, 1003], 'host 5003 is guest 1003');
    const stranger = await f.stat('stranger');
    assert.deepEqual([stranger.uid, stranger.gid], [65534, 65534], 'an unmapped owner shows as nobody');
    await assert.rejects(f.readFile('theirs'), { errnoName: 'EACCES' }, "the kernel checks permissions as the owner");
    await assert.rejects(f.chown('mine', 2000, -1), { errnoName: 'EINVAL' }, 'an id outside the map has no host id');
    await assert.rejects(f.chown('mine', 1003, -1), { errnoName: 'EPERM' }, 'no CAP_CHOWN: cannot give files away');
    await f.chmod('mine', 0o640);
    assert.equal(fs.statSync(path.join(exp, 'mine')).mode & 0o777, 0o640, 'the owner may chmod its own file');
    // Without an owner dom0 acts as itself: the same file is readable, and ids pass through unmapped.
    assert.equal(await plain.fs().readFile('theirs', 'utf8'), 'private to host user 5003');
    assert.equal((await plain.fs().stat('theirs')).uid, 5003);
  } finally {
    await mapped.close();
    await plain.close();
    await dom0.cleanup();
  }
});

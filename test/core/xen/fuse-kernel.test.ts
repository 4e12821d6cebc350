// The FUSE kernel probe: a real /dev/fuse connection mounted, negotiated and unmounted, as root and as an
// unprivileged user in its own user and mount namespace (how the native front end will run in a guest sandbox).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isFuseDevice, probeFuseKernel } from '../../../core/xen/fuse-kernel.ts';
import { openFds } from '../../helpers/fixtures.ts';
import { isMounted } from '../../helpers/fuse.ts';

const EPERM = 1;
const ENOENT = 2;
const PASSTHROUGH = 1n << 37n;
const FUSE_KERNEL = new URL('../../../core/xen/fuse-kernel.ts', import.meta.url).pathname;

function scratch(t: { after: (fn: () => void) => void }): { dir: string; file: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-fuseprobe-'));
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  const file = path.join(base, 'backing');
  fs.writeFileSync(file, 'backing file');
  return { dir, file };
}

test('probe as root: the version is negotiated, passthrough agreed when offered, a backing file registers', (t) => {
  const { dir, file } = scratch(t);
  const fdsBefore = openFds(process.pid).length;
  const info = probeFuseKernel(dir, { backingFile: file });
  assert.equal(info.kernelMajor, 7);
  assert.equal(info.minor, Math.min(info.kernelMinor, 45));
  const offered = (info.kernelFlags & PASSTHROUGH) !== 0n;
  assert.equal(info.passthrough, offered, 'passthrough is agreed exactly when the kernel offers it');
  assert.equal((info.flags & ~info.kernelFlags), 0n, 'nothing agreed that the kernel did not offer');
  if (offered) {
    assert.ok(info.kernelMinor >= 40, 'passthrough came with protocol 7.40');
    assert.ok((info.backingId ?? 0) > 0, `a backing id (got ${String(info.backingId)}, error ${String(info.backingError)})`);
  } else {
    assert.equal(info.backingError, EPERM);
  }
  assert.equal(isMounted(dir), false, 'the probe unmounted');
  assert.equal(openFds(process.pid).length, fdsBefore, 'and closed its connection');
});

test('probe without asking for passthrough: not agreed, and the kernel refuses backing files (EPERM)', (t) => {
  const { dir, file } = scratch(t);
  const info = probeFuseKernel(dir, { passthrough: false, backingFile: file });
  assert.equal(info.passthrough, false);
  assert.equal(info.flags & PASSTHROUGH, 0n);
  assert.equal(info.backingError, EPERM);
  assert.equal(isMounted(dir), false);
});

test('a probe that cannot mount throws with the errno and leaves no descriptor behind', (t) => {
  const { dir } = scratch(t);
  const fdsBefore = openFds(process.pid).length;
  assert.throws(() => probeFuseKernel(path.join(dir, 'missing')), (err: Error & { errno?: number }) => {
    assert.equal(err.errno, ENOENT);
    assert.match(err.message, /mount\(.*missing/);
    return true;
  });
  assert.equal(openFds(process.pid).length, fdsBefore);
});

test('isFuseDevice: /dev/fuse yes; a regular file, /dev/null or a closed descriptor no', (t) => {
  const { file } = scratch(t);
  const fuse = fs.openSync('/dev/fuse', 'r+');
  const plain = fs.openSync(file, 'r');
  const nul = fs.openSync('/dev/null', 'r');
  try {
    assert.equal(isFuseDevice(fuse), true);
    assert.equal(isFuseDevice(plain), false);
    assert.equal(isFuseDevice(nul), false);
  } finally {
    for (const fd of [fuse, plain, nul]) fs.closeSync(fd);
  }
  assert.equal(isFuseDevice(plain), false, 'closed');
});

test('unprivileged, in its own user and mount namespace: FUSE mounts and passthrough is agreed, but registering a backing file is EPERM', (t) => {
  const { dir, file } = scratch(t);
  fs.chmodSync(path.dirname(dir), 0o755);
  const script = `import { probeFuseKernel } from ${JSON.stringify(FUSE_KERNEL)};
    console.log(JSON.stringify(probeFuseKernel(${JSON.stringify(dir)}, { backingFile: ${JSON.stringify(file)} }),
      (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));`;
  // --map-root-user: uid 0 inside a new user namespace, which holds no capability over the host.
  const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', process.execPath, '--import', 'tsx',
    '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { passthrough: boolean; kernelFlags: string; backingError?: number };
  const offered = (BigInt(info.kernelFlags) & PASSTHROUGH) !== 0n;
  assert.equal(info.passthrough, offered);
  assert.equal(info.backingError, EPERM, 'only dom0 (CAP_SYS_ADMIN on the host) may register backing files');
  assert.equal(isMounted(dir), false, 'nothing mounted in dom0\'s namespace');
});

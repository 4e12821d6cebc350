// The sandbox a guest's workload runs in: its own namespaces, a root with nothing of dom0's but read-only system
// directories and the guest's mount point, no network, an unprivileged uid that cannot regain privileges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';

const PROBE = new URL('../../helpers/sandbox-probe.ts', import.meta.url).pathname;

test('a workload sees only its sandbox: no dom0 files, no network, no root, its own PIDs', async () => {
  // A listener in dom0's network namespace: the workload must not reach it.
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const mountsBefore = fs.readFileSync('/proc/mounts', 'utf8');
  try {
    const r = spawnSync('unshare', ['--mount', '--pid', '--net', '--fork', '--propagation', 'private', '--',
      process.execPath, '--import', 'tsx', PROBE, '/mnt/xenfs', String(port)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, string | number>;
    assert.equal(report.code, 0);
    assert.equal(report.id, '65534:65534', 'the workload runs unprivileged');
    assert.deepEqual(String(report.root).split(',').filter(Boolean).sort(),
      ['bin', 'dev', 'lib', 'lib64', 'mnt', 'proc', 'sbin', 'tmp', 'usr'].sort());
    assert.equal(report.etc, 'missing', "dom0's /etc is not there");
    assert.equal(report.net, 'refused', "dom0's loopback listener is out of reach");
    assert.equal(report.links, '0', 'no /sys, so no view of interfaces either');
    assert.equal(report.pid1, 'node', "PID 1 is the guest's own init, not dom0's");
    assert.equal(report.usr, 'readonly', 'system directories are read-only');
    assert.equal(report.mount, 'from the front end', 'the guest mount point is there');
    assert.equal(report.write, 'ok');
    assert.equal(report.nnp, '1', 'no_new_privs: setuid binaries cannot raise it back to root');
    assert.equal(report.capeff, '0000000000000000', 'no capabilities');
  } finally {
    server.close();
  }
  assert.equal(fs.readFileSync('/proc/mounts', 'utf8'), mountsBefore, "nothing mounted in dom0's namespace");
});

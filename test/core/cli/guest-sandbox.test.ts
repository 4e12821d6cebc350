// `xenfs guest NAME --mount DIR --sandbox -- CMD`: the workload runs isolated, as a VM would, with the guest's
// XenFS mount as the only thing of dom0's it can reach besides read-only system directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';
import { waitFor } from '../../helpers/fixtures.ts';

const MAIN = new URL('../../../core/cli/main.ts', import.meta.url).pathname;

test('a sandboxed workload works on its mount, sees nothing else of dom0, reaches no network, and its exit status comes back', async () => {
  const dom0 = await Dom0.start({
    config: {
      exports: { shared: { path: 'shared' } },
      guests: [{ name: 'boxed', secret: 'b', exports: [{ name: 'home', path: 'home' }, 'shared'] }],
    },
  });
  const home = path.join(dom0.dir, 'home');
  fs.mkdirSync(home);
  fs.chmodSync(home, 0o777); // the workload is uid 65534 and dom0 acts as root here: the mode is the guest's view
  fs.writeFileSync(path.join(home, 'hello'), 'hello from dom0\n');
  fs.mkdirSync(path.join(dom0.dir, 'shared'));
  const secretFile = path.join(dom0.dir, 'secret');
  fs.writeFileSync(secretFile, 'b', { mode: 0o600 });
  const mountsBefore = fs.readFileSync('/proc/mounts', 'utf8');
  // A service of dom0's on loopback: the guest's own loopback is another interface, and down.
  const listener = net.createServer((c) => c.end('dom0 service\n'));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  const run = (exportName: string, script: string): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'guest', 'boxed', '--mount', '/data', '--export', exportName,
      '--control', dom0.controlPath, '--secret-file', secretFile, '--sandbox', '--', 'sh', '-c', script],
    { encoding: 'utf8', timeout: 60_000 });
  const fields = (stdout: string): Record<string, string> => Object.fromEntries(stdout.trim().split('\n')
    .filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  try {
    const script = [
      'echo "uid=$(id -u)"',
      'echo "read=$(cat hello)"',
      'echo written > out && echo "write=ok"',
      'echo "etc=$(ls /etc 2>/dev/null | wc -l)"',
      'echo "state=$(ls ' + dom0.stateDir + ' 2>/dev/null | wc -l)"',
      `echo "net=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null && echo connected || echo refused)"`,
      'exit 7',
    ].join('; ');
    const r = run('home', script);
    assert.equal(r.status, 7, `the workload's exit status comes back (stderr: ${String(r.stderr)})`);
    const out = fields(String(r.stdout));
    assert.equal(out.uid, '65534');
    assert.equal(out.read, 'hello from dom0');
    assert.equal(out.write, 'ok');
    assert.equal(out.etc, '0', "dom0's /etc is not visible");
    assert.equal(out.state, '0', "dom0's state directory (and its control socket) is not visible");
    assert.equal(out.net, 'refused', "dom0's loopback services are out of reach");
    assert.equal(fs.readFileSync(path.join(home, 'out'), 'utf8'), 'written\n', 'the write landed in the export');

    // The read-only export: readable, and every change refused by dom0 (EROFS), whatever the workload tries.
    fs.writeFileSync(path.join(dom0.dir, 'shared', 'doc'), 'shared doc\n');
    const ro = fields(String(run('shared', [
      'echo "read=$(cat doc)"',
      'echo "write=$(echo x 2>&1 > new || true)"',
      'echo "append=$(echo x 2>&1 >> doc || true)"',
      'echo "rm=$(rm -f doc 2>&1 || true)"',
    ].join('; ')).stdout));
    assert.equal(ro.read, 'shared doc');
    for (const k of ['write', 'append', 'rm']) assert.match(ro[k] ?? '', /Read-only file system/, `${k} on a read-only export`);
    assert.deepEqual(fs.readdirSync(path.join(dom0.dir, 'shared')), ['doc']);
    assert.equal(fs.readFileSync(path.join(dom0.dir, 'shared', 'doc'), 'utf8'), 'shared doc\n');
  } finally {
    listener.close();
    await dom0.cleanup();
  }
  assert.equal(fs.readFileSync('/proc/mounts', 'utf8'), mountsBefore, 'nothing left mounted in dom0');
});

/** The sandbox roots in dom0's temporary directory. */
function sandboxRoots(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('xenfs-sandbox-')).sort();
}

/** PIDs of processes whose command line contains `needle` (this test's own processes only match by design). */
function processesWith(needle: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
    } catch {
      return false;
    }
  }).map(Number);
}

test('SIGTERM to a sandboxed guest stops its workload, unmounts, and leaves no process behind', async () => {
  const domain = `boxed-stop-${process.pid}`;
  const dom0 = await Dom0.start({ config: { guests: [{ name: domain, secret: 's', exports: [{ name: 'home', path: 'home' }] }] } });
  const home = path.join(dom0.dir, 'home');
  fs.mkdirSync(home);
  fs.chmodSync(home, 0o777);
  const secretFile = path.join(dom0.dir, 'secret');
  fs.writeFileSync(secretFile, 's', { mode: 0o600 });
  const mountsBefore = fs.readFileSync('/proc/mounts', 'utf8');
  const rootsBefore = sandboxRoots();
  const cli = spawn(process.execPath, ['--import', 'tsx', MAIN, 'guest', domain, '--mount', '/data',
    '--control', dom0.controlPath, '--secret-file', secretFile, '--sandbox', '--', 'sh', '-c',
    'echo running > started; exec sleep 600'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => fs.existsSync(path.join(home, 'started')), 30_000, 'the workload to start');
    // The front end inside (the native one, on this kernel) holds no privilege on the host: a uid of its own, and
    // no capability outside its user namespace.
    const inner = processesWith('--sandbox-inside').filter((pid) => {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0] === process.execPath && argv.includes(domain); // not the xenfs-enter processes above it
    });
    assert.equal(inner.length, 1, 'one front end inside the sandbox');
    const status = fs.readFileSync(`/proc/${inner[0]}/status`, 'utf8');
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1).map(Number) ?? [];
    assert.equal(uids.length, 4);
    assert.ok(uids.every((u) => u >= 2 ** 30), `the front end runs as host uid ${uids.join('/')}, not root`);
    assert.notEqual(fs.readlinkSync(`/proc/${inner[0]}/ns/user`), fs.readlinkSync('/proc/self/ns/user'), 'in a user namespace of its own');
    cli.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('hung'), 20_000))]);
    assert.equal(code, 128 + 15, 'the workload was ended by SIGTERM and its status came back');
    assert.deepEqual(processesWith(domain), [], 'neither the front end nor the workload is left');
    assert.deepEqual(sandboxRoots(), rootsBefore, 'the sandbox root directory is gone from dom0\'s /tmp');
  } finally {
    if (cli.exitCode === null) cli.kill('SIGKILL');
    for (const pid of processesWith(domain)) process.kill(pid, 'SIGKILL');
    await dom0.cleanup();
  }
  assert.equal(fs.readFileSync('/proc/mounts', 'utf8'), mountsBefore, 'nothing left mounted in dom0');
});

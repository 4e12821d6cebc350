// `xenfs guest NAME --mount DIR --sandbox -- CMD`: the workload runs isolated, as a VM would, with the guest's
// XenFS mount as the only thing of dom0's it can reach besides read-only system directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Dom0 } from '../../helpers/dom0.ts';

const MAIN = new URL('../../../core/cli/main.ts', import.meta.url).pathname;

test('a sandboxed workload works on its mount, sees nothing else of dom0, and its exit status comes back', async () => {
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
  try {
    const script = [
      'echo "uid=$(id -u)"',
      'echo "read=$(cat hello)"',
      'echo written > out && echo "write=ok"',
      'echo "etc=$(ls /etc 2>/dev/null | wc -l)"',
      'echo "state=$(ls ' + dom0.stateDir + ' 2>/dev/null | wc -l)"',
      'exit 7',
    ].join('; ');
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'guest', 'boxed', '--mount', '/data',
      '--control', dom0.controlPath, '--secret-file', secretFile, '--sandbox', '--', 'sh', '-c', script],
    { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 7, `the workload's exit status comes back (stderr: ${r.stderr})`);
    const out = Object.fromEntries(r.stdout.trim().split('\n').filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(out.uid, '65534');
    assert.equal(out.read, 'hello from dom0');
    assert.equal(out.write, 'ok');
    assert.equal(out.etc, '0', "dom0's /etc is not visible");
    assert.equal(out.state, '0', "dom0's state directory (and its control socket) is not visible");
    assert.equal(fs.readFileSync(path.join(home, 'out'), 'utf8'), 'written\n', 'the write landed in the export');
  } finally {
    await dom0.cleanup();
  }
  assert.equal(fs.readFileSync('/proc/mounts', 'utf8'), mountsBefore, 'nothing left mounted in dom0');
});

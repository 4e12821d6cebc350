// A guest killed in the middle of writing: dom0 notices, releases its grants, mappings and handles, and goes on
// serving; the domain can connect again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fork } from 'node:child_process';
import { Dom0 } from '../../helpers/dom0.ts';
import { openFds, waitFor } from '../../helpers/fixtures.ts';
import { Guest } from '../../../core/frontend/guest.ts';

const CHILD = new URL('../../helpers/guest-child.ts', import.meta.url).pathname;

const fdCount = (pid: number): number => openFds(pid).length;

/** dom0's mappings of guest memory: the memfds are named xenfs-<domain>. */
function guestMappings(pid: number, domain: string): number {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`memfd:xenfs-${domain}`)).length;
}

test('a guest SIGKILLed mid-write leaves nothing behind in dom0', async () => {
  const dom0 = await Dom0.start({
    config: { guests: [{ name: 'victim', secret: 's1', exports: [{ name: 'home', path: 'victim' }] }] },
  });
  try {
    fs.mkdirSync(path.join(dom0.dir, 'victim'));
    const pid = dom0.pid as number;
    const baseline = fdCount(pid);
    assert.equal(guestMappings(pid, 'victim'), 0);
    const child = fork(CHILD, [dom0.controlPath, 'victim', 's1', 'big.bin'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      let written = 0;
      await new Promise<void>((resolve, reject) => {
        child.on('message', (m: { type: string; written?: number }) => {
          if (m.type === 'progress') written = m.written ?? 0;
          if (written >= 128) resolve();
        });
        child.once('exit', (code) => reject(new Error(`guest exited early (${code})`)));
      });
      // Mid-write: the guest holds open handles, and dom0 has its ring and buffers mapped.
      assert.ok(fdCount(pid) >= baseline + 4, 'dom0 holds the guest handles while it lives');
      assert.ok(guestMappings(pid, 'victim') > 0, 'dom0 maps the guest ring and buffers while it lives');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await waitFor(() => dom0.logs().some((l) => l.msg === 'guest disconnected' && l.domain === 'victim'), 5000, 'disconnect');
    await waitFor(() => fdCount(pid) === baseline, 5000, 'dom0 to close the dead guest descriptors');
    await waitFor(() => guestMappings(pid, 'victim') === 0, 5000, 'dom0 to unmap the dead guest memory');
    // What the guest wrote before it died is there, whole blocks of it.
    const size = fs.statSync(path.join(dom0.dir, 'victim', 'big.bin')).size;
    assert.ok(size >= 128 * 1024, `the file holds what was written (${size} bytes)`);
    // The same domain connects again and is served.
    const again = await Guest.connect({ controlPath: dom0.controlPath, domain: 'victim', secret: 's1' });
    const st = await again.fs().stat('big.bin');
    assert.equal(st.size, size);
    await again.close();
  } finally {
    await dom0.cleanup();
  }
});

// The host watcher on its own thread: what HostWatcher reports comes through, the server's events still stop
// their echoes, dom0's state directory is left alone, and close() ends the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChangeEvent, NewEvent } from '../../../core/events/change-event.ts';
import { HostWatcherThread } from '../../../core/events/host-watcher-thread.ts';
import { silentLogger } from '../../../core/util/log.ts';
import { waitFor } from '../../helpers/wait.ts';


test('host changes come through the thread; noted server events and the state directory do not', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xwt-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'state'));
  const w = new HostWatcherThread({
    exports: [{ guest: 'g', export: 'e', root }], ignoreUnder: path.join(root, 'state'), logger: silentLogger,
  });
  t.after(() => w.close());
  const seen: NewEvent[] = [];
  w.on('event', (ev) => seen.push(ev));
  await w.ready;
  const guestFile = path.join(root, 'by-guest');
  fs.writeFileSync(guestFile, 'g');
  const st = fs.statSync(guestFile);
  const note: ChangeEvent = {
    seq: 1, guest: 'g', export: 'e', kind: 'created', path: 'by-guest', dir: false, size: st.size, mtime: st.mtimeMs,
    ino: st.ino, time: Date.now(), origin: 'guest',
  };
  w.noteServerEvents([note]);
  fs.writeFileSync(path.join(root, 'state', 'log'), 'dom0 own');
  fs.writeFileSync(path.join(root, 'by-host'), 'h');
  await waitFor(() => seen.some((e) => e.path === 'by-host'), 5000, 'the host change');
  await new Promise((r) => setTimeout(r, 400)); // past the settle time of the others
  assert.deepEqual(seen.map((e) => `${e.origin} ${e.kind} ${e.path}`), ['host created by-host']);
  await w.close();
  fs.writeFileSync(path.join(root, 'after-close'), 'x');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(seen.length, 1, 'nothing after close');
  await w.close(); // idempotent
});

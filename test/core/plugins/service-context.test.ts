// The context handed to a service: its name, frozen settings, a pino child naming it, its own state directory
// and database, the reader and hooks it was given, and a signal aborted at stop before the database closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseConfig } from '../../../core/config/config.ts';
import { GuestReader } from '../../../core/plugins/guest-reader.ts';
import { createServiceContext } from '../../../core/plugins/service-context.ts';
import type { PolicyHooks, SnapshotHooks } from '../../../core/plugins/plugin-api.ts';

// The server's side of these hooks is not written yet; a service here must not call them.
const policy: PolicyHooks = {
  deny: () => Promise.reject(new Error('no policy in this test')),
  allow: () => Promise.reject(new Error('no policy in this test')),
  denied: () => Promise.resolve([]),
};
const snapshots: SnapshotHooks = { quiesce: () => Promise.reject(new Error('no snapshots in this test')) };

test('a context: logger child with {service}, own state dir and db, signal aborted before the db closes', (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-service-context-'));
  t.after(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const config = parseConfig({ stateDir, guests: [{ name: 'g1', secret: 's', exports: [{ name: 'e', path: stateDir }] }] }, '/x.yaml');
  const reader = new GuestReader(config);
  const handle = createServiceContext({
    name: 'file-count', config: Object.freeze({ limit: 3 }), stateDir, logger: pino({ base: null }, sink),
    reader, policy, snapshots,
  });
  const ctx = handle.context;
  assert.equal(ctx.name, 'file-count');
  assert.deepEqual(ctx.config, { limit: 3 });
  assert.equal(ctx.stateDir, path.join(stateDir, 'services', 'file-count'));
  assert.equal(fs.statSync(ctx.stateDir).mode & 0o777, 0o700);
  assert.equal(ctx.reader, reader);
  assert.equal(ctx.policy, policy);
  assert.equal(ctx.snapshots, snapshots);
  assert.ok(Object.isFrozen(ctx));
  ctx.logger.info({ n: 1 }, 'hello');
  assert.deepEqual(lines.map((l) => [l.service, l.msg, l.n]), [['file-count', 'hello', 1]]);
  ctx.db().exec('CREATE TABLE t (x)');
  assert.equal(fs.existsSync(path.join(ctx.stateDir, 'state.db')), true);

  let abortedWhileDbOpen = false;
  ctx.signal.addEventListener('abort', () => {
    abortedWhileDbOpen = ctx.db().open;
  });
  handle.abort();
  assert.ok(ctx.signal.aborted);
  assert.ok(abortedWhileDbOpen, 'stop() must still be able to use the database after abort');
  ctx.db().prepare('INSERT INTO t VALUES (1)').run();
  handle.close();
  handle.close();
  assert.throws(() => ctx.db(), /after stop/);
});

// `xenfs up` as an administrator runs it: a real private redis-server, the event log, the publisher, the host
// watcher and a service (the test recorder), driven by a guest through the client library, inspected with
// `xenfs status --json`, and stopped with SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { Guest } from '../../../core/frontend/guest.ts';
import { waitFor } from '../../helpers/fixtures.ts';
import { RECORDER, Up, filesOnDisk } from '../../helpers/platform.ts';

const config = (extra = ''): string => `
stateDir: state
guests:
  - name: vm1
    secret: s3cret
    exports:
      - { name: home, path: home }
events: { batchMax: 50, batchWindowMs: 10 }
services:
  recorder:
    module: ${RECORDER}
${extra}`;

function pidAlive(pid: number): boolean {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

test('guest changes reach the service once each, in order; status reports it; SIGTERM stops everything', async (t) => {
  const up = new Up({ config: config(), dirs: ['home'] });
  t.after(() => up.close());
  await up.start();
  const g = await Guest.connect({ controlPath: up.controlPath, domain: 'vm1', secret: 's3cret' });
  const f = g.fs('home');
  for (let i = 0; i < 120; i++) await f.writeFile(`f${i}`, `data ${i}`);
  await f.mkdir('dir');
  await f.rename('f0', 'dir/f0');
  await f.unlink('f1');
  const st0 = await up.status();
  assert.equal(st0.guests[0]?.connected, true);
  assert.ok((st0.guests[0]?.requests ?? 0) > 240);
  await g.close();
  await waitFor(() => up.handled().length >= 243, 15_000, 'the recorder to handle 243 events');
  const st = await up.status();
  assert.equal(st.events?.logged, 243);
  assert.equal(st.events?.published, 243);
  assert.deepEqual(st.queues, [{ service: 'recorder', waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 }]);
  const svc = st.services[0];
  assert.equal(svc?.healthy, true);
  assert.equal(svc?.worker?.eventsDone, 243);
  assert.deepEqual(svc?.reconcile.map((r) => r.state), ['done']);
  const redisPid = st.redis.pid ?? 0;
  assert.ok(redisPid > 0 && pidAlive(redisPid), 'the private redis-server runs');
  assert.equal(await up.stop(), 0, `clean exit; stderr:\n${up.stderr.slice(-2000)}`);
  assert.equal(pidAlive(redisPid), false, 'the private redis-server is stopped with it');
  const handled = up.handled();
  assert.deepEqual(handled.map((h) => h.seq), Array.from({ length: 243 }, (_, i) => i + 1), 'each once, in seq order');
  assert.ok(handled.every((h) => h.sense === 1 && h.origin === 'guest'));
  assert.deepEqual(up.recordedFiles('vm1', 'home'), filesOnDisk(up.path('home')));
  assert.ok(!fs.existsSync(up.path('state', 'admin.sock')) && !fs.existsSync(up.controlPath), 'sockets removed');
});

test('changes made on dom0 outside XenFS arrive as host events; the guest\'s own changes are not echoed', async (t) => {
  const up = new Up({ config: config(), dirs: ['home'] });
  t.after(() => up.close());
  await up.start();
  const g = await Guest.connect({ controlPath: up.controlPath, domain: 'vm1', secret: 's3cret' });
  t.after(() => g.close());
  await g.fs('home').writeFile('by-guest', 'g');
  fs.writeFileSync(up.path('home', 'by-host'), 'h');
  fs.mkdirSync(up.path('home', 'host-dir'));
  await waitFor(() => up.handled().some((h) => h.path === 'host-dir'), 10_000, 'the host mkdir');
  fs.rmSync(up.path('home', 'by-host'));
  await waitFor(() => up.handled().some((h) => h.path === 'by-host' && h.kind === 'deleted'), 10_000, 'the host unlink');
  await new Promise((r) => setTimeout(r, 2500)); // past the echo window: a late echo would show now
  const handled = up.handled();
  const brief = handled.map((h) => `${h.origin} ${h.kind} ${h.path}`);
  assert.ok(brief.includes('guest created by-guest') && brief.includes('guest modified by-guest'), brief.join('\n'));
  assert.ok(brief.includes('host created by-host'), brief.join('\n'));
  assert.ok(brief.includes('host dirCreated host-dir'), brief.join('\n'));
  assert.ok(brief.includes('host deleted by-host'), brief.join('\n'));
  assert.deepEqual(handled.filter((h) => h.path === 'by-guest' && h.origin === 'host'), [], 'no echo of the guest\'s write');
});

test('files a guest had before: reconciliation at start reports them once; a restart reports only what changed', async (t) => {
  const up = new Up({ config: config(), dirs: ['home/sub'] });
  t.after(() => up.close());
  for (let i = 0; i < 30; i++) fs.writeFileSync(up.path('home', 'sub', `old${i}`), 'x');
  await up.start();
  await waitFor(async () => (await up.status()).services[0]?.reconcile[0]?.state === 'done', 15_000, 'reconciliation');
  await waitFor(() => up.handled().length >= 31, 15_000, '31 events');
  const first = up.handled();
  assert.equal(first.length, 31, 'one dirCreated and 30 created');
  assert.ok(first.every((h) => h.origin === 'reconcile'));
  assert.equal(first[0]?.kind, 'dirCreated', 'a directory before what it holds');
  assert.equal(await up.stop(), 0);
  // While dom0 is down, the export changes behind its back.
  fs.rmSync(up.path('home', 'sub', 'old0'));
  fs.writeFileSync(up.path('home', 'sub', 'old1'), 'longer now');
  fs.writeFileSync(up.path('home', 'new'), 'n');
  await up.start();
  await waitFor(() => up.handled().length >= 34, 15_000, '3 more events');
  await new Promise((r) => setTimeout(r, 500));
  const again = up.handled().slice(31).map((h) => `${h.origin} ${h.kind} ${h.path}`).sort();
  assert.deepEqual(again, ['reconcile created new', 'reconcile deleted sub/old0', 'reconcile modified sub/old1']);
  assert.deepEqual(up.recordedFiles('vm1', 'home'), filesOnDisk(up.path('home')));
});

test('a bad config fails at start naming the file, the key, its line and what was expected', async (t) => {
  const up = new Up({ config: config('    concurrency: many\n'), dirs: ['home'] });
  t.after(() => up.close());
  const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', new URL('../../../core/cli/main.ts', import.meta.url).pathname,
    'up', '--config', up.configFile]).then(() => null, (e: { code: number; stderr: string }) => e);
  assert.ok(r, 'xenfs up must fail');
  assert.equal(r.code, 2);
  const line = fs.readFileSync(up.configFile, 'utf8').split('\n').findIndex((l) => l.includes('concurrency')) + 1;
  assert.match(r.stderr, new RegExp(`${up.configFile}: services\\.recorder\\.concurrency \\(line ${line}\\): must be an integer`));
  assert.ok(!fs.existsSync(up.path('state', 'redis', 'redis.pid')), 'nothing was started');
});

test('a service whose config breaks its schema fails the start with the key named', async (t) => {
  const up = new Up({ config: config('    config: { delayMs: -5 }\n'), dirs: ['home'] });
  t.after(() => up.close());
  await assert.rejects(up.start(), /services\.recorder\.config\.delayMs/);
  assert.notEqual(up.child?.exitCode, 0);
});

test('an event that keeps failing: retried with backoff, then kept in the failed set and shown by status --failed', async (t) => {
  const up = new Up({
    config: config("    attempts: 3\n    backoffMs: 50\n    config: { failPaths: ['bad'] }\n"),
    dirs: ['home'],
  });
  t.after(() => up.close());
  await up.start();
  const g = await Guest.connect({ controlPath: up.controlPath, domain: 'vm1', secret: 's3cret' });
  t.after(() => g.close());
  const f = g.fs('home');
  await f.writeFile('good', 'g');
  await f.mkdir('bad');
  await waitFor(async () => (await up.status()).queues[0]?.failed === 1, 15_000, 'the batch to fail for good');
  const tries = up.handled().filter((h) => h.path === 'bad').length;
  assert.equal(tries, 3, 'three attempts of the failing event');
  const good = up.handled().filter((h) => h.path === 'good').map((h) => `${h.origin} ${h.kind} ${h.seq}`);
  assert.deepEqual(good, ['guest created 1', 'guest modified 2'], 'handled once each: not retried with the failing one');
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx',
    new URL('../../../core/cli/main.ts', import.meta.url).pathname, 'status', '--config', up.configFile, '--failed', '--json']);
  const report = JSON.parse(stdout) as Array<{ service: string; batches: Array<{ attemptsMade: number; failures: Array<{ path: string; message: string }> }> }>;
  assert.equal(report[0]?.service, 'recorder');
  assert.equal(report[0]?.batches[0]?.attemptsMade, 3);
  assert.deepEqual(report[0]?.batches[0]?.failures.map((x) => [x.path, x.message]), [['bad', 'bad is set to fail']]);
});

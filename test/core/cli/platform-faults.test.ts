// Nothing lost (docs/events.md): while a guest writes, each part of dom0's event flow is killed in turn — the
// private redis-server, a worker in the middle of a batch, the whole `xenfs up` process — and afterwards every
// event in the log has been handled by the subscribed service, the service's picture of the export matches the
// disk, no handler was handed an event it could not make sense of, and what came twice is counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Guest } from '../../../core/frontend/guest.ts';
import { PrivateRedis } from '../../../core/events/private-redis.ts';
import { silentLogger } from '../../../core/util/log.ts';
import { waitFor } from '../../helpers/fixtures.ts';
import { RECORDER, Up, filesOnDisk, type Handled } from '../../helpers/platform.ts';

const MAIN = new URL('../../../core/cli/main.ts', import.meta.url).pathname;

const config = (extra: string, recorder = ''): string => `
stateDir: state
guests:
  - { name: vm1, secret: s3cret, exports: [{ name: home, path: home }] }
events: { batchMax: 20, batchWindowMs: 10 }
${extra}
services:
  recorder:
    module: ${RECORDER}
${recorder}`;

/** A guest writing `n` files (with renames and deletions mixed in) at a steady pace, carrying on through failures. */
function writer(controlPath: string, n: number, pauseMs: number): { done: Promise<number> } {
  const done = (async () => {
    const g = await Guest.connect({ controlPath, domain: 'vm1', secret: 's3cret' });
    const f = g.fs('home');
    let failures = 0;
    for (let i = 0; i < n; i++) {
      try {
        await f.writeFile(`f${i}`, `content ${i}`);
        if (i % 10 === 9) await f.rename(`f${i - 1}`, `moved-${i}`);
        if (i % 15 === 14) await f.unlink(`f${i - 2}`);
      } catch {
        failures++; // a call that met dom0 gone for longer than the guest waits: its file is simply not there
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
    await g.close();
    return failures;
  })();
  return { done };
}

interface Outcome {
  logged: number;
  handled: Handled[];
  duplicates: number;
}

/** Stops the platform, then checks every logged event was handled and the record matches the disk. */
async function converged(up: Up, t: { diagnostic: (s: string) => void }): Promise<Outcome> {
  let last: unknown = null;
  await waitFor(async () => {
    const st = await up.status();
    last = st;
    const q = st.queues[0];
    return st.events?.published === st.events?.logged && q?.waiting === 0 && q.active === 0 && q.delayed === 0
      && q.failed === 0
      && st.services[0]?.reconcile.every((r) => r.state === 'done') === true;
  }, 60_000, 'the queues to drain').catch((err: Error) => {
    throw new Error(`${err.message}; last status ${JSON.stringify(last)}\n${up.stderr.slice(-3000)}`);
  });
  assert.equal(await up.stop(), 0, up.stderr.slice(-3000));
  const logged = up.loggedEvents();
  const handled = up.handled();
  const seen = new Set(handled.filter((h) => h.origin !== 'reconcile').map((h) => h.seq));
  // An event retried after a newer one on the same path was handled is passed over by the runtime (handing it
  // over would undo the newer change): it counts as handled, and only then.
  const superseded = (seq: number, p: string): boolean => handled.some((h) => h.path === p && h.seq > seq);
  const missing = logged.filter((e) => !seen.has(e.seq) && !superseded(e.seq, e.path)).map((e) => `${e.seq} ${e.kind} ${e.path}`);
  assert.deepEqual(missing, [], 'every logged event was handled');
  assert.deepEqual(handled.filter((h) => h.sense !== 1), [], 'no handler saw an event it could not make sense of');
  assert.deepEqual(up.recordedFiles('vm1', 'home'), filesOnDisk(up.path('home')), 'the service converged on the disk');
  const counts = new Map<number, number>();
  for (const h of handled) if (h.origin !== 'reconcile') counts.set(h.seq, (counts.get(h.seq) ?? 0) + 1);
  const duplicates = [...counts.values()].filter((c) => c > 1).length;
  const passedOver = logged.filter((e) => !seen.has(e.seq)).length;
  t.diagnostic(`logged ${logged.length}, handled ${handled.length} (${duplicates} events twice, ${passedOver} superseded, `
    + `${handled.filter((h) => h.origin === 'reconcile').length} from reconciliation)`);
  return { logged: logged.length, handled, duplicates };
}

test('redis-server killed while a guest writes: restarted, and every event handled', { timeout: 120_000 }, async (t) => {
  const up = new Up({ config: config(''), dirs: ['home'] });
  t.after(() => up.close());
  await up.start();
  const w = writer(up.controlPath, 300, 5);
  await waitFor(() => up.handled().length > 60, 30_000, 'the first events handled');
  const pid = (await up.status()).redis.pid ?? 0;
  assert.ok(pid > 0);
  process.kill(pid, 'SIGKILL');
  await waitFor(async () => {
    const st = await up.status();
    return st.redis.running === true && st.redis.pid !== pid;
  }, 20_000, 'the platform to restart redis-server');
  assert.equal(await w.done, 0, 'the guest never noticed: Redis is not on its path');
  const out = await converged(up, t);
  assert.ok(out.logged >= 300);
  assert.match(up.stderr, /private redis-server died; restarting it/);
});

test('a worker killed in the middle of a batch: the batch goes to another worker', { timeout: 120_000 }, async (t) => {
  // An external Redis (the test's), so that a second worker process can join the same queue.
  const redisDir = (await import('node:fs')).mkdtempSync('/tmp/xfr-');
  const redis = new PrivateRedis({ dir: redisDir, logger: silentLogger });
  await redis.start();
  t.after(async () => {
    await redis.stop();
    (await import('node:fs')).rmSync(redisDir, { recursive: true, force: true });
  });
  const up = new Up({ config: config(`redis: { path: ${redis.socketPath} }`, '    config: { delayMs: 40 }\n'), dirs: ['home'] });
  t.after(() => up.close());
  await up.start();
  const worker = spawn(process.execPath, ['--import', 'tsx', MAIN, 'worker', '--service', 'recorder', '--config', up.configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const workerExit = new Promise((r) => worker.once('exit', r));
  t.after(async () => {
    if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    await workerExit;
  });
  await new Promise<void>((resolve, reject) => {
    worker.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('"ready"') && resolve());
    worker.once('exit', (c) => reject(new Error(`xenfs worker exited ${c}`)));
  });
  const w = writer(up.controlPath, 120, 2);
  const wpid = worker.pid ?? 0;
  await waitFor(() => up.handled().some((h) => h.pid === wpid), 30_000, 'the second worker to take a batch');
  worker.kill('SIGKILL');
  await workerExit;
  const cut = up.handled().filter((h) => h.pid === wpid);
  assert.equal(await w.done, 0);
  const out = await converged(up, t);
  // The killed worker's last batch was cut short: its events were handled again, by dom0's own worker.
  const last = cut.at(-1);
  assert.ok(last);
  const again = out.handled.some((h) => h.seq === last.seq && h.pid !== wpid);
  const newer = out.handled.some((h) => h.path === last.path && h.seq > last.seq && h.pid !== wpid);
  assert.ok(again || newer, `seq ${last.seq} handled again elsewhere (or passed over for a newer event on ${last.path})`);
});

test('xenfs up killed (SIGKILL) while a guest writes, then started again: nothing lost', { timeout: 120_000 }, async (t) => {
  const up = new Up({ config: config(''), dirs: ['home'] });
  t.after(() => up.close());
  await up.start();
  const w = writer(up.controlPath, 250, 5);
  await waitFor(() => up.handled().length > 50, 30_000, 'the first events handled');
  await up.stop('SIGKILL');
  // The guest waits for dom0 (up to its --wait-ms) and carries on once it is back.
  await new Promise((r) => setTimeout(r, 300));
  await up.start();
  const failures = await w.done;
  t.diagnostic(`guest calls that failed while dom0 was away: ${failures}`);
  const out = await converged(up, t);
  assert.ok(out.logged >= 200);
  assert.match(up.stderr, /stale|stopping a redis-server|left running/i, 'the orphaned redis-server was dealt with');
});

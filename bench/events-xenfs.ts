// The XenFS side of bench:events: `xenfs up` (as test/helpers/platform.ts runs it: a child process with a YAML
// config, its private redis-server, the event log, the publisher and the bench service `latency`), and guest
// producers in processes of their own (events-producer.ts). Progress is read as `xenfs status --json` reads
// it, from the admin socket.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminGet } from '../core/cli/admin-socket.ts';
import type { PlatformStatus } from '../core/cli/platform-status.ts';
import { QUEUE_PREFIX } from '../core/events/redis-options.ts';
import { Up } from '../test/helpers/platform.ts';
import type { Scope } from '../test/helpers/fixtures.ts';
import { IpcChild } from './ipc-child.ts';
import { readRecords } from './events-records.ts';
import type { Flow, ProduceCount, ProduceMode } from './events-phases.ts';
import { QueueProbe } from './events-queue-probe.ts';
import { RECORDS_FILE } from './services/latency/index.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVICE = 'latency';
const SECRET = 'bench';
const EXPORT = 'home';

export interface XenfsOptions {
  /** Guest connections, each a domain of its own with one export. */
  guests: number;
  /** Producer processes; the guests are shared out among them. */
  producers: number;
  /** Files per guest, each with one write+close in flight: the writes in flight per connection. */
  concurrency: number;
  batchMax: number;
  batchWindowMs: number;
  /** The service's `concurrency` (batches handled at once). */
  serviceConcurrency: number;
  /** `events.watchHost` (the host watcher, on by default in XenFS). */
  watchHost: boolean;
  /** `limits.spinMicros` (how long a ring thread polls before sleeping); null: XenFS's default. */
  spinMicros: number | null;
}

function configYaml(o: XenfsOptions): string {
  const guests = Array.from({ length: o.guests }, (_, i) =>
    `  - { name: g${i + 1}, secret: ${SECRET}, exports: [ { name: ${EXPORT}, path: home${i + 1} } ] }`);
  return [
    'stateDir: state',
    ...(o.spinMicros === null ? [] : [`limits: { spinMicros: ${o.spinMicros} }`]),
    'guests:',
    ...guests,
    `events: { batchMax: ${o.batchMax}, batchWindowMs: ${o.batchWindowMs}, watchHost: ${o.watchHost} }`,
    'services:',
    `  ${SERVICE}:`,
    `    module: ${JSON.stringify(path.join(HERE, 'services', SERVICE, 'index.ts'))}`,
    `    concurrency: ${o.serviceConcurrency}`,
    '',
  ].join('\n');
}

/** Sums the producers' counts. */
function total(counts: ProduceCount[]): ProduceCount {
  return {
    ops: counts.reduce((n, c) => n + c.ops, 0),
    errors: counts.reduce((n, c) => n + c.errors, 0),
    firstError: counts.find((c) => c.firstError !== null)?.firstError ?? null,
  };
}

/** Starts dom0 and the producers (stopped by `scope`), waits for the service, and returns them as a Flow. */
export async function startXenfs(o: XenfsOptions, scope: Scope): Promise<Flow> {
  const up = new Up({ config: configYaml(o), dirs: Array.from({ length: o.guests }, (_, i) => `home${i + 1}`) });
  scope.defer(() => up.close());
  await up.start();
  const stateDir = up.path('state');
  const status = async (): Promise<PlatformStatus> => (await adminGet(stateDir, '/status')) as PlatformStatus;
  const probe = new QueueProbe(path.join(stateDir, 'redis', 'redis.sock'), SERVICE, QUEUE_PREFIX);
  scope.defer(() => probe.close());

  const producers = Array.from({ length: Math.min(o.producers, o.guests) }, (_, k) => {
    const mine = Array.from({ length: o.guests }, (_, i) => i).filter((i) => i % o.producers === k).map((i) => `g${i + 1}`);
    const child = new IpcChild(`producer ${k + 1}`, path.join(HERE, 'events-producer.ts'),
      [up.controlPath, SECRET, mine.join(','), EXPORT, String(o.concurrency)]);
    scope.defer(() => child.stop());
    return child;
  });
  await Promise.all(producers.map((p) => p.ready()));

  // Counting starts once reconciliation has passed over the exports: what the service handles from then on is
  // exactly what the log gets.
  let base: { logged: number; done: number } | null = null;
  const counts = async (): Promise<{ logged: number; done: number; published: number; reconciling: boolean }> => {
    const st = await status();
    const svc = st.services.find((s) => s.name === SERVICE);
    return {
      logged: st.events?.logged ?? 0,
      published: st.events?.published ?? 0,
      done: svc?.worker?.eventsDone ?? 0,
      reconciling: (svc?.reconcile ?? []).some((r) => r.state !== 'done'),
    };
  };
  const all = (c: { cmd: string; perSec?: number }): Promise<ProduceCount[]> =>
    Promise.all(producers.map((p) => p.request<ProduceCount>(c)));

  return {
    name: 'xenfs',
    async pids() {
      const st = await status();
      return { dom0: [up.child?.pid ?? 0], redis: [st.redis.pid ?? 0], producers: producers.map((p) => p.pid) };
    },
    async produce(mode: ProduceMode) {
      if (mode.kind === 'rate') await all({ cmd: 'rate', perSec: mode.perSec / producers.length });
      else await all({ cmd: 'flood' });
    },
    async stopProducing() {
      return total(await all({ cmd: 'stop' }));
    },
    async produced() {
      return (await counts()).logged - (base?.logged ?? 0);
    },
    async drained() {
      const c = await counts();
      if (c.reconciling || c.published < c.logged) return false;
      if (base === null) {
        // Reconciliation's own events go straight to the queue, not through the log: wait until the worker is
        // idle before taking the baseline.
        const st = await status();
        const q = st.queues.find((x) => x.service === SERVICE);
        if ((q?.waiting ?? 1) + (q?.active ?? 1) + (q?.delayed ?? 1) > 0) return false;
        base = { logged: c.logged, done: c.done };
        return true;
      }
      return c.done - base.done >= c.logged - base.logged;
    },
    async queued() {
      const c = await counts();
      return c.published >= c.logged;
    },
    pause: () => probe.pause(),
    resume: () => probe.resume(),
    usedMemory: () => probe.usedMemory(),
    async finish() {
      await Promise.all(producers.map((p) => p.stop()));
      const code = await up.stop();
      if (code !== 0) throw new Error(`xenfs up exited ${code}:\n${up.stderr.slice(-2000)}`);
      return readRecords(up.path('state', 'services', SERVICE, RECORDS_FILE));
    },
  };
}

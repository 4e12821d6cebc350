// The peer side of bench:events: plain BullMQ with one job per event — a private redis-server like the one
// `xenfs up` runs (PrivateRedis: UNIX socket, append-only file fsynced every second), a producer process and a
// worker process (events-peer-child.ts), jobs removed on completion.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrivateRedis } from '../core/events/private-redis.ts';
import { silentLogger } from '../core/util/log.ts';
import type { Scope } from '../test/helpers/fixtures.ts';
import { IpcChild } from './ipc-child.ts';
import { readRecords } from './events-records.ts';
import type { Flow, ProduceCount, ProduceMode } from './events-phases.ts';
import { QueueProbe } from './events-queue-probe.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const QUEUE = 'peer';
/** BullMQ's default key prefix, which both children use. */
const PREFIX = 'bull';

export interface PeerOptions {
  /** The Worker's concurrency (jobs handled at once). */
  concurrency: number;
}

/** Starts the peer's redis-server, worker and producer (stopped by `scope`) and returns them as a Flow. */
export async function startPeer(o: PeerOptions, scope: Scope): Promise<Flow> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-bench-peer-'));
  scope.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const redis = new PrivateRedis({ dir: path.join(dir, 'redis'), logger: silentLogger });
  scope.defer(() => redis.stop());
  await redis.start();
  const probe = new QueueProbe(redis.socketPath, QUEUE, PREFIX);
  scope.defer(() => probe.close());
  const recordsFile = path.join(dir, 'records.bin');
  const script = path.join(HERE, 'events-peer-child.ts');
  const worker = new IpcChild('peer worker', script, ['worker', redis.socketPath, QUEUE, String(o.concurrency), recordsFile]);
  scope.defer(() => worker.stop());
  const producer = new IpcChild('peer producer', script, ['producer', redis.socketPath, QUEUE]);
  scope.defer(() => producer.stop());
  await Promise.all([worker.ready(), producer.ready()]);

  const produced = (): Promise<number> => producer.request<number>({ cmd: 'count' });
  return {
    name: 'bullmq',
    async pids() {
      return { redis: [redis.pid ?? 0], producer: [producer.pid], worker: [worker.pid] };
    },
    async produce(mode: ProduceMode) {
      await producer.request(mode.kind === 'rate' ? { cmd: 'rate', perSec: mode.perSec } : { cmd: mode.kind });
    },
    stopProducing: () => producer.request<ProduceCount>({ cmd: 'stop' }),
    produced,
    async drained() {
      const [p, h] = await Promise.all([produced(), worker.request<number>({ cmd: 'count' })]);
      return h >= p;
    },
    // Every add was acknowledged before stopProducing() resolved.
    queued: async () => true,
    pause: () => probe.pause(),
    resume: () => probe.resume(),
    usedMemory: () => probe.usedMemory(),
    async finish() {
      await worker.request({ cmd: 'close' });
      await Promise.all([worker.stop(), producer.stop()]);
      return readRecords(recordsFile);
    },
  };
}

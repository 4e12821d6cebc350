// bench:events' peer, one process per role: plain BullMQ with one job per event, as an application would use it
// without XenFS. Driven by the parent over IPC (ipc-child.ts).
//   producer <socket> <queue>: flood (addBulk of 100-job chunks while the queue's waiting list is under FLOOD_HIGH: as fast
//     as the worker keeps up), fill (addBulk with no such bound), rate {perSec} (one queue.add per event, paced,
//     open loop), count, stop. Each job's data is { seq, t }: t is the wall clock just before the add.
//   worker <socket> <queue> <concurrency> <records file>: a Worker (maxRetriesPerRequest: null) that records, per job, its
//     seq, t and the handler's start (events-records.ts); commands count and close.
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { ProducerRun, serveParent } from './ipc-child.ts';
import { RecordWriter, wall } from './events-records.ts';

const CHUNK = 100;
/** Flood keeps the waiting list below this many jobs. */
const FLOOD_HIGH = 2000;
/** addBulk calls a flood keeps in flight. */
const FLOOD_LOOPS = 2;

interface PeerJob {
  seq: number;
  t: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const [role, socket, queueName, ...rest] = process.argv.slice(2);
if (!socket || !queueName || (role !== 'producer' && role !== 'worker')) {
  throw new Error('usage: events-peer-child producer <socket> <queue> | worker <socket> <queue> <concurrency> <records file>');
}

function producer(sock: string, name: string): void {
  const queue = new Queue<PeerJob>(name, { connection: new Redis({ path: sock }) });
  const opts = { removeOnComplete: true };
  let seq = 0;
  let added = 0;
  const run = new ProducerRun();
  const failed = (err: unknown): void => run.failed(err);
  const bulk = async (): Promise<void> => {
    const t = wall();
    const jobs = Array.from({ length: CHUNK }, () => ({ name: 'e', data: { seq: ++seq, t }, opts }));
    try {
      await queue.addBulk(jobs);
      added += CHUNK;
      run.ok(CHUNK);
    } catch (err) {
      failed(err);
    }
  };
  const loops = (bounded: boolean): Promise<unknown> => Promise.all(Array.from({ length: FLOOD_LOOPS }, async () => {
    while (!run.stopping) {
      if (bounded && (await queue.getWaitingCount()) >= FLOOD_HIGH) await sleep(1);
      else await bulk();
    }
  }));
  const paced = async (perSec: number): Promise<void> => {
    const inFlight = new Set<Promise<void>>();
    const t0 = wall();
    let started = 0;
    while (!run.stopping) {
      const due = Math.floor(((wall() - t0) * perSec) / 1000);
      for (; started < due; started++) {
        const p: Promise<void> = queue.add('e', { seq: ++seq, t: wall() }, opts).then(() => {
          added++;
          run.ok();
        }, failed).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(1);
    }
    await Promise.all(inFlight);
  };
  serveParent({
    flood: () => run.start(() => loops(true)),
    fill: () => run.start(() => loops(false)),
    rate: (c) => run.start(() => paced(Number(c.perSec))),
    count: () => added,
    stop: () => run.stop(),
  }, { type: 'ready' }, () => queue.close());
}

function worker(sock: string, name: string, concurrency: number, file: string): void {
  const records = new RecordWriter(file);
  const w = new Worker<PeerJob>(name, async (job: Job<PeerJob>) => {
    records.add(job.data.seq, job.data.t, wall());
  }, { connection: new Redis({ path: sock, maxRetriesPerRequest: null }), concurrency });
  let closing: Promise<number> | null = null;
  const close = (): Promise<number> => {
    closing ??= w.close().then(() => {
      records.close();
      return records.count;
    });
    return closing;
  };
  void w.waitUntilReady().then(() => serveParent({ count: () => records.count, close }, { type: 'ready' }, async () => {
    await close();
  }));
}

if (role === 'producer') producer(socket, queueName);
else worker(socket, queueName, Number(rest[0]), rest[1] ?? '');

// A ServiceWorker in a process of its own, for tests that kill it hard: argv is the Redis socket, the service
// and the lock duration (ms). It prints one JSON line per batch it starts ({"started": jobId, "seqs": [...]})
// and never finishes one: the parent SIGKILLs it mid-batch.
import { ServiceWorker } from '../../core/events/service-worker.ts';
import { silentLogger } from '../../core/util/log.ts';

const [socket, service, lockDuration] = process.argv.slice(2);
if (!socket || !service || !lockDuration) throw new Error('usage: queue-worker-child <socket> <service> <lockDurationMs>');
const worker = new ServiceWorker({
  target: { path: socket },
  service,
  lockDuration: Number(lockDuration),
  logger: silentLogger,
  handler: (events, info) => {
    process.stdout.write(`${JSON.stringify({ started: info.jobId, seqs: events.map((e) => e.seq) })}\n`);
    return new Promise(() => {});
  },
});
await worker.waitUntilReady();
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

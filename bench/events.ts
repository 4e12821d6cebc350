// bench:events — XenFS's change-event flow end to end, from guests' closes to the service's handler, against
// plain BullMQ with one job per event, in one run (events-phases.ts says what is measured, in which order):
// sustained throughput under a flood, latency at a fixed rate, the producing side alone and the consuming side
// alone, and Redis's memory before and after.
// Usage: npm run bench:events [-- --json] [--warmup-s 3] [--window-s 15] [--latency-s 10] [--rate 1000]
//        [--backlog-events 20000] [--guests 4] [--producers 2] [--concurrency 16] [--batch-max 100] [--batch-window-ms 10]
//        [--service-concurrency 1] [--watch-host true] [--spin-micros N] [--peer-concurrency 16]
import os from 'node:os';
import { Scope } from '../test/helpers/fixtures.ts';
import { benchArgs } from './args.ts';
import { measureFlow, type FlowResult, type PhaseOptions } from './events-phases.ts';
import { startPeer } from './events-peer.ts';
import { printResults, resultJson, type Setup } from './events-report.ts';
import { startXenfs } from './events-xenfs.ts';

const { json, num, list } = benchArgs();
/** A flag that may be 0 (benchArgs' num() takes positive numbers only). */
const nonNegative = (name: string, dflt: number): number => {
  const v = Number(list(name, [String(dflt)])[0]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be an integer >= 0`);
  return v;
};
const flag = (name: string, dflt: boolean): boolean => {
  const v = list(name, [String(dflt)])[0];
  if (v !== 'true' && v !== 'false') throw new Error(`${name} must be true or false`);
  return v === 'true';
};

const setup: Setup = {
  cores: os.availableParallelism(),
  guests: num('--guests', 4),
  producers: num('--producers', 2),
  concurrency: num('--concurrency', 16),
  batchMax: num('--batch-max', 100),
  batchWindowMs: nonNegative('--batch-window-ms', 10),
  serviceConcurrency: num('--service-concurrency', 1),
  watchHost: flag('--watch-host', true),
  spinMicros: list('--spin-micros', []).length > 0 ? nonNegative('--spin-micros', 0) : null,
  // Measured here (quiet machine): 1 → 2.2k jobs/s, 4 → 4.8k, 16 → 6.3k, 64 → 7.2k but a worse p99. A peer run
  // at concurrency 1 would flatter XenFS; 16 is near its best.
  peerConcurrency: num('--peer-concurrency', 16),
  warmupS: num('--warmup-s', 3),
  windowS: num('--window-s', 15),
  latencyS: num('--latency-s', 10),
  ratePerS: num('--rate', 1000),
  backlogEvents: num('--backlog-events', 20_000),
};
if (setup.latencyS <= 1) throw new Error('--latency-s must be more than 1 (the first second is not sampled)');
const phases: PhaseOptions = { ...setup, drainTimeoutS: 60 };
const log = (msg: string): void => void process.stderr.write(`bench:events: ${msg}\n`);

/** Sets one flow up, measures it, and tears it down whatever happens. */
async function run(scope: Scope, start: (scope: Scope) => Promise<Parameters<typeof measureFlow>[0]>): Promise<FlowResult> {
  const own = new Scope();
  // Closed here when the flow is done, or by the outer scope on Ctrl-C: both wait for the same closing.
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => (closing ??= own.close());
  scope.defer(close);
  try {
    return await measureFlow(await start(own), phases, log);
  } finally {
    await close();
  }
}

async function main(): Promise<void> {
  const scope = new Scope();
  // One cleanup, whoever asks first: a run failing because Ctrl-C killed its children must wait for the cleanup
  // the signal started, not exit halfway through it.
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => (cleaning ??= scope.close());
  let signalled = false;
  // Ctrl-C or a kill: stop every process started (by PID) and remove the temporary directories, then exit.
  const interrupted = (sig: NodeJS.Signals): void => {
    signalled = true;
    log(`${sig}: cleaning up`);
    cleanup().catch((err: unknown) => log(`cleanup: ${String(err)}`)).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    log('xenfs: starting dom0 and the producers');
    const xenfs = await run(scope, (s) => startXenfs(setup, s));
    log('bullmq: starting redis-server, the worker and the producer');
    const peer = await run(scope, (s) => startPeer({ concurrency: setup.peerConcurrency }, s));
    printResults(xenfs, peer, setup);
    if (json) console.log(JSON.stringify(resultJson(xenfs, peer, setup)));
  } catch (err) {
    // The signal handler exits once its cleanup is done; the failure is only its consequence.
    if (signalled) await new Promise(() => {});
    throw err;
  } finally {
    await cleanup();
  }
}

await main();

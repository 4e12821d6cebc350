// The measurements bench:events makes, the same for XenFS and for its peer: each side is a Flow (producers,
// a queue, a consumer) and goes through the same phases in the same order, timed by the same clock.
//   1. sustained: producers flood for warm-up + window; events handled per second inside the window (by handler
//      start), events produced per second in it, and CPU per event; then the flow drains.
//   2. latency: producers paced at a fixed rate for warm-up + window; handler start − production time of the
//      events produced in the window. (Measured here, BullMQ needs about 2.5 s at a new pace before its latency
//      settles: a first second left out was not enough.)
//   3. backlog: the queue paused, producers flood until a backlog of a given size has been produced (what the
//      producing side does with no consumer running: the producer alone); the queue resumed, the consumer drains
//      the backlog alone.
// Redis's used_memory is sampled before the flood and after each drain. Only events from the producers count
// (records of origin 'guest'); XenFS's host watcher may add others, which the check reports.
import fs from 'node:fs';
import {
  byOrigin, drainPerSecond, handledPerSecond, latency, onlyOrigin, wall, type Latency, type Records,
} from './events-records.ts';

export type ProduceMode =
  /** As fast as the producers can (the peer: as fast as its worker keeps up). */
  | { kind: 'flood' }
  /** As fast as the producers can, with the queue paused (the peer: with no flow control at all). */
  | { kind: 'fill' }
  /** `perSec` events a second in all, paced. */
  | { kind: 'rate'; perSec: number };

export interface ProduceCount {
  /** Operations done (XenFS: write+close; the peer: jobs added). */
  ops: number;
  errors: number;
  firstError: string | null;
}

/** One event flow under test, as the phases drive it. */
export interface Flow {
  readonly name: string;
  /** The processes whose CPU time is the flow's, by role. */
  pids(): Promise<Record<string, number[]>>;
  produce(mode: ProduceMode): Promise<void>;
  /** Stops producing; resolves once what was in flight is done, with the operations since produce(). */
  stopProducing(): Promise<ProduceCount>;
  /** Events produced since the flow was set up (XenFS: `xenfs status` events.logged; the peer: jobs added). */
  produced(): Promise<number>;
  /** Whether every event produced has been handled. */
  drained(): Promise<boolean>;
  /** Whether every event produced is in the queue (XenFS: the publisher has caught up with the log). */
  queued(): Promise<boolean>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Redis's INFO memory used_memory, bytes. */
  usedMemory(): Promise<number>;
  /** Stops the consumer once drained and returns every record it wrote. */
  finish(): Promise<Records>;
}

export interface PhaseOptions {
  /** Before the sustained window and before the latency window. */
  warmupS: number;
  windowS: number;
  latencyS: number;
  ratePerS: number;
  /** Events in the backlog. */
  backlogEvents: number;
  /** How long a drain may take before the bench gives up. */
  drainTimeoutS: number;
}

export interface FlowResult {
  name: string;
  sustained: {
    handledPerS: number;
    producedPerS: number;
    /** CPU milliseconds (every process of the flow) per 1000 events handled in the window. */
    cpuMsPer1k: number;
    /** Cores busy in the window, by role; `other`: the rest of the machine. */
    cores: Record<string, number>;
    produced: ProduceCount;
  };
  latency: Latency & { targetPerS: number; produced: ProduceCount };
  backlog: {
    producedPerS: number;
    /** Cores busy while the producers filled the backlog, by role (as sustained.cores). */
    producingCores: Record<string, number>;
    drainPerS: number;
    events: number;
    produced: ProduceCount;
  };
  /** Events produced during the phases and their records, by origin (XenFS: one event per write+close). */
  memory: { before: number; afterSustained: number; afterBacklog: number };
  check: {
    /** Operations the producers completed. */
    ops: number;
    /** Events produced (XenFS: logged). */
    produced: number;
    /** Records written, by origin. */
    records: Record<string, number>;
  };
}

const POLL_MS = 20;
/** The backlog's size is checked this often. */
const BACKLOG_POLL_MS = 100;
/** The producing-alone rate is measured from this long after the fill starts (the producers' ramp left out). */
const BACKLOG_LEAD_MS = 500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** CPU seconds (user + system) each process has used, from /proc; a process gone counts 0. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may itself contain spaces.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks / CLOCK_TICKS;
}

// USER_HZ: 100 on every Linux architecture Node runs on.
const CLOCK_TICKS = 100;

/** CPU seconds the whole machine has spent busy (every state but idle and iowait), from /proc/stat. */
function machineCpuSeconds(): number {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
}

/**
 * CPU seconds used so far by each role's processes, and under `other` by everything else on the machine (this
 * bench's own process included): other work competes for the same cores and is reported, not hidden.
 */
function cpuByRole(pids: Record<string, number[]>): Record<string, number> {
  const roles = Object.fromEntries(Object.entries(pids).map(([role, p]) => [role, cpuSeconds(p)]));
  const ours = Object.values(roles).reduce((a, b) => a + b, 0);
  return { ...roles, other: machineCpuSeconds() - ours };
}

/**
 * Cores each role kept busy between two cpuByRole() readings `seconds` apart. `other` is a difference of two
 * clocks read at slightly different moments, so it can come out a little below 0; it is reported as 0 then.
 */
function coresBusy(from: Record<string, number>, to: Record<string, number>, seconds: number): Record<string, number> {
  return Object.fromEntries(Object.keys(to).map((role) => {
    const cores = ((to[role] ?? 0) - (from[role] ?? 0)) / seconds;
    return [role, role === 'other' ? Math.max(0, cores) : cores];
  }));
}

/** What a timed stretch of producing saw: when it ran, and the CPU and production counters at both ends. */
interface Span {
  from: number;
  to: number;
  cpu: [Record<string, number>, Record<string, number>];
  produced: [number, number];
}

/** Starts a span now (after a warm-up already spent) and ends it after `ms`, or once `done` says so. */
async function span(flow: Flow, pids: Record<string, number[]>, ms: number, done?: (produced: number) => boolean): Promise<Span> {
  const from = wall();
  const cpu0 = cpuByRole(pids);
  const p0 = await flow.produced();
  let p1 = p0;
  if (done) {
    const deadline = Date.now() + ms;
    while (!done(p1 - p0) && Date.now() < deadline) {
      await sleep(BACKLOG_POLL_MS);
      p1 = await flow.produced();
    }
  } else {
    await sleep(ms);
  }
  const to = wall();
  const cpu1 = cpuByRole(pids);
  if (!done) p1 = await flow.produced();
  return { from, to, cpu: [cpu0, cpu1], produced: [p0, p1] };
}

const seconds = (s: Span): number => (s.to - s.from) / 1000;
const producedPerS = (s: Span): number => (s.produced[1] - s.produced[0]) / seconds(s);

/** Runs the three phases on `flow` and computes its figures. */
export async function measureFlow(flow: Flow, o: PhaseOptions, log: (msg: string) => void): Promise<FlowResult> {
  const drainMs = o.drainTimeoutS * 1000;
  const drain = (what: string): Promise<void> => waitUntil(() => flow.drained(), drainMs, `${flow.name} to drain ${what}`);
  await drain('its setup');
  const producedAtStart = await flow.produced();
  const before = await flow.usedMemory();
  const pids = await flow.pids();

  log(`${flow.name}: sustained flood, ${o.warmupS} s warm-up + ${o.windowS} s window`);
  const floodAt = wall();
  await flow.produce({ kind: 'flood' });
  await sleep(o.warmupS * 1000);
  const sustained = await span(flow, pids, o.windowS * 1000);
  const sustainedCount = await flow.stopProducing();
  await drain('after the flood');
  const afterSustained = await flow.usedMemory();

  log(`${flow.name}: ${o.ratePerS}/s, ${o.warmupS} s warm-up + ${o.latencyS} s window`);
  await flow.produce({ kind: 'rate', perSec: o.ratePerS });
  await sleep(o.warmupS * 1000);
  const paced = await span(flow, pids, o.latencyS * 1000);
  const latencyCount = await flow.stopProducing();
  await drain('after the paced phase');

  log(`${flow.name}: backlog of ${o.backlogEvents} events produced with the queue paused, then drained`);
  await flow.pause();
  await flow.produce({ kind: 'fill' });
  await sleep(BACKLOG_LEAD_MS);
  const filling = await span(flow, pids, drainMs, (n) => n >= o.backlogEvents);
  const backlogCount = await flow.stopProducing();
  await waitUntil(() => flow.queued(), drainMs, `${flow.name} to queue its backlog`);
  const resumedAt = wall();
  await flow.resume();
  await drain('its backlog');
  const afterBacklog = await flow.usedMemory();
  const producedAtEnd = await flow.produced();
  const all = await flow.finish();

  const records = onlyOrigin(all, 'guest');
  const handledPerS = handledPerSecond(records, sustained.from, sustained.to);
  const [cpu0, cpu1] = sustained.cpu;
  const cpuTotal = Object.keys(pids).reduce((sum, role) => sum + ((cpu1[role] ?? 0) - (cpu0[role] ?? 0)), 0);
  const drained = drainPerSecond(records, resumedAt);
  return {
    name: flow.name,
    sustained: {
      handledPerS,
      producedPerS: producedPerS(sustained),
      cpuMsPer1k: (cpuTotal * 1000) / ((handledPerS * seconds(sustained)) / 1000),
      cores: coresBusy(cpu0, cpu1, seconds(sustained)),
      produced: sustainedCount,
    },
    latency: { ...latency(records, paced.from, paced.to), targetPerS: o.ratePerS, produced: latencyCount },
    backlog: {
      producedPerS: producedPerS(filling),
      producingCores: coresBusy(filling.cpu[0], filling.cpu[1], seconds(filling)),
      drainPerS: drained.perSecond,
      events: drained.events,
      produced: backlogCount,
    },
    memory: { before, afterSustained, afterBacklog },
    check: {
      ops: sustainedCount.ops + latencyCount.ops + backlogCount.ops,
      produced: producedAtEnd - producedAtStart,
      records: byOrigin(all, floodAt),
    },
  };
}

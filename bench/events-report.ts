// What bench:events prints: XenFS and its peer side by side with the ratio, how each was set up, the checks, and
// (with --json) the result object as the last line.
import type { FlowResult } from './events-phases.ts';

/** How the run was set up, echoed in the table and the JSON. */
export interface Setup {
  cores: number;
  guests: number;
  producers: number;
  concurrency: number;
  batchMax: number;
  batchWindowMs: number;
  serviceConcurrency: number;
  watchHost: boolean;
  /** limits.spinMicros, null when XenFS's default. */
  spinMicros: number | null;
  peerConcurrency: number;
  warmupS: number;
  windowS: number;
  latencyS: number;
  ratePerS: number;
  backlogEvents: number;
}

/** Cores busy outside the flow above which the table warns that the machine was not quiet. */
const OTHER_LOAD_WARN = 0.2;

const r1 = (v: number): number => Math.round(v * 10) / 10;
const r2 = (v: number): number => Math.round(v * 100) / 100;
const int = (v: number): number => Math.round(v);
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(2);

export function printResults(x: FlowResult, p: FlowResult, s: Setup): void {
  const row = (what: string, a: number, b: number, fmt: (v: number) => number = int): void => {
    const ratio = a / b;
    console.log(`${what.padEnd(44)} ${String(fmt(a)).padStart(10)} ${String(fmt(b)).padStart(10)} ` +
      `${(Number.isFinite(ratio) ? ratio.toFixed(2) : 'n/a').padStart(9)}`);
  };
  console.log(`bench:events on ${s.cores} cores — xenfs: ${s.guests} guests in ${s.producers} producer processes, ` +
    `${s.concurrency} writes in flight per guest, batchMax ${s.batchMax}, batchWindowMs ${s.batchWindowMs}, ` +
    `service concurrency ${s.serviceConcurrency}, watchHost ${s.watchHost}` +
    `${s.spinMicros === null ? '' : `, spinMicros ${s.spinMicros}`}; ` +
    `bullmq: one job per event, worker concurrency ${s.peerConcurrency}`);
  console.log(`${''.padEnd(44)} ${'xenfs'.padStart(10)} ${'bullmq'.padStart(10)} ${'xenfs/peer'.padStart(9)}`);
  row(`sustained: events handled/s (${s.windowS} s window)`, x.sustained.handledPerS, p.sustained.handledPerS);
  row('  events produced/s in the window', x.sustained.producedPerS, p.sustained.producedPerS);
  row('  CPU ms per 1000 events, all processes', x.sustained.cpuMsPer1k, p.sustained.cpuMsPer1k, r1);
  row('producer alone (queue paused): produced/s', x.backlog.producedPerS, p.backlog.producedPerS);
  row('consumer alone (backlog drain): handled/s', x.backlog.drainPerS, p.backlog.drainPerS);
  row(`latency at ${s.ratePerS}/s: p50 ms`, x.latency.p50, p.latency.p50, r2);
  row(`latency at ${s.ratePerS}/s: p99 ms`, x.latency.p99, p.latency.p99, r2);
  row(`latency at ${s.ratePerS}/s: max ms`, x.latency.max, p.latency.max, r2);
  row('  rate achieved /s', x.latency.perSecond, p.latency.perSecond);
  const busy = (cores: Record<string, number>): string =>
    Object.entries(cores).map(([role, c]) => `${role} ${c.toFixed(2)}`).join(', ');
  for (const f of [x, p]) {
    console.log(`${f.name}: cores busy in the sustained window: ${busy(f.sustained.cores)}; producing the backlog: ` +
      busy(f.backlog.producingCores));
    const other = f.sustained.cores.other ?? 0;
    if (other > OTHER_LOAD_WARN) {
      console.log(`${f.name}: WARNING: other processes kept ${other.toFixed(2)} of ${s.cores} cores busy in the window; ` +
        'its figures are lower than a quiet machine would give');
    }
    console.log(`${f.name}: redis used_memory ${mb(f.memory.before)} MiB before the flood, ${mb(f.memory.afterSustained)} ` +
      `after it drained, ${mb(f.memory.afterBacklog)} after the ${int(f.backlog.events)}-event backlog drained`);
    const errors = f.sustained.produced.errors + f.latency.produced.errors + f.backlog.produced.errors;
    const firstError = [f.sustained, f.latency, f.backlog].map((ph) => ph.produced.firstError).find((e) => e !== null);
    const handled = Object.entries(f.check.records).map(([origin, n]) => `${n} ${origin}`).join(', ') || 'none';
    console.log(`${f.name}: check: ${f.check.ops} operations, ${f.check.produced} events produced, handled: ${handled}` +
      (errors > 0 ? `; ${errors} producer errors, first: ${firstError}` : ''));
  }
}

/** The --json object: the figures the brief names first, then the rest. */
export function resultJson(x: FlowResult, p: FlowResult, s: Setup): Record<string, unknown> {
  return {
    bench: 'events',
    events_per_s: int(x.sustained.handledPerS),
    p50_ms: r2(x.latency.p50),
    p99_ms: r2(x.latency.p99),
    logged_events_per_s: int(x.sustained.producedPerS),
    producer_events_per_s: int(x.backlog.producedPerS),
    drain_events_per_s: int(x.backlog.drainPerS),
    cpu_ms_per_1k_events: r1(x.sustained.cpuMsPer1k),
    latency_rate_per_s: int(x.latency.perSecond),
    redis_used_memory_before: x.memory.before,
    redis_used_memory_after: x.memory.afterSustained,
    redis_used_memory_after_backlog: x.memory.afterBacklog,
    peer_jobs_per_s: int(p.sustained.handledPerS),
    peer_p50_ms: r2(p.latency.p50),
    peer_p99_ms: r2(p.latency.p99),
    peer_producer_jobs_per_s: int(p.backlog.producedPerS),
    peer_drain_jobs_per_s: int(p.backlog.drainPerS),
    peer_cpu_ms_per_1k_jobs: r1(p.sustained.cpuMsPer1k),
    peer_redis_used_memory_before: p.memory.before,
    peer_redis_used_memory_after: p.memory.afterSustained,
    ratio_events_per_s: r2(x.sustained.handledPerS / p.sustained.handledPerS),
    ratio_p50: r2(x.latency.p50 / p.latency.p50),
    ratio_p99: r2(x.latency.p99 / p.latency.p99),
    ratio_drain: r2(x.backlog.drainPerS / p.backlog.drainPerS),
    ratio_cpu_per_event: r2(x.sustained.cpuMsPer1k / p.sustained.cpuMsPer1k),
    cores_busy: { xenfs: roundAll(x.sustained.cores), peer: roundAll(p.sustained.cores) },
    cores_busy_producing: { xenfs: roundAll(x.backlog.producingCores), peer: roundAll(p.backlog.producingCores) },
    check: { xenfs: x.check, peer: p.check },
    cores: s.cores,
    guests: s.guests,
    producers: s.producers,
    concurrency: s.concurrency,
    batch_max: s.batchMax,
    batch_window_ms: s.batchWindowMs,
    service_concurrency: s.serviceConcurrency,
    watch_host: s.watchHost,
    spin_micros: s.spinMicros,
    peer_concurrency: s.peerConcurrency,
    window_s: s.windowS,
    latency_s: s.latencyS,
    rate_per_s: s.ratePerS,
    backlog_events: s.backlogEvents,
  };
}

function roundAll(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, r2(v)]));
}

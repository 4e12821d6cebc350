// `xenfs status`: what a running dom0 reports about its guests, its queues, its services and the event flow
// (docs/events.md, "Status"). Collected on request from the parts that know; rates are measured between two
// requests (the first one reports none).
import type { ServerConfig } from '../config/config.ts';
import type { EventLog } from '../events/event-log.ts';
import type { PrivateRedis } from '../events/private-redis.ts';
import type { Publisher, PublisherStats } from '../events/publisher.ts';
import type { FailedBatch, QueueCounts, ServiceQueues } from '../events/service-queue.ts';
import type { ReconcileTask, Reconciler } from '../plugins/reconciler.ts';
import type { ServiceRuntime, ServiceStatus } from '../plugins/service-runtime.ts';
import type { XenfsServer } from '../server/server.ts';

export interface GuestStatus {
  name: string;
  connected: boolean;
  requests: number;
  /** Requests per second since the previous status request; null on the first. */
  opsPerSec: number | null;
  bytesRead: number;
  bytesWritten: number;
  handles: number;
}

export interface QueueStatus extends Partial<QueueCounts> {
  service: string;
  /** Why the counts are missing (Redis unreachable). */
  error?: string;
}

export interface ServiceReport extends ServiceStatus {
  /** Events logged but not yet handled by this service: the publisher's lag plus its queued batches. */
  lag: { batches: number | null; publisherEvents: number; sinceLastHandledMs: number | null };
  reconcile: ReconcileTask[];
}

export interface PlatformStatus {
  time: string;
  config: string;
  guests: GuestStatus[];
  queues: QueueStatus[];
  services: ServiceReport[];
  events: (PublisherStats & { lost: number }) | null;
  redis: { private: boolean; pid: number | null; running: boolean | null };
}

export interface StatusSources {
  config: ServerConfig;
  server: XenfsServer | null;
  queues: ServiceQueues | null;
  runtime: ServiceRuntime | null;
  publisher: Publisher | null;
  reconciler: Reconciler | null;
  redis: PrivateRedis | null;
  eventLog: EventLog | null;
}

type Samples = Map<string, { at: number; requests: number }>;

function guestStatus(src: StatusSources, prev: Samples): GuestStatus[] {
  const now = Date.now();
  const connected = new Set(src.server?.connectedGuests() ?? []);
  return src.config.guests.map((g) => {
    const st = src.server?.guestStats(g.name) ?? null;
    const requests = st?.requests ?? 0;
    const p = prev.get(g.name);
    prev.set(g.name, { at: now, requests });
    const opsPerSec = p && now > p.at && requests >= p.requests ? ((requests - p.requests) * 1000) / (now - p.at) : null;
    return {
      name: g.name, connected: connected.has(g.name), requests, opsPerSec,
      bytesRead: st?.bytesRead ?? 0, bytesWritten: st?.bytesWritten ?? 0, handles: st?.handles ?? 0,
    };
  });
}

/** Collects status; keeps each guest's last request count, for the next call's rates. */
export class StatusCollector {
  readonly #samples: Samples = new Map();

  collect(src: StatusSources): Promise<PlatformStatus> {
    return collectStatus(src, this.#samples);
  }
}

async function collectStatus(src: StatusSources, samples: Samples): Promise<PlatformStatus> {
  const services = (await src.runtime?.status()) ?? [];
  const queues = await Promise.all(services.map(async (s): Promise<QueueStatus> => {
    try {
      return { service: s.name, ...(await (src.queues as ServiceQueues).counts(s.name)) };
    } catch (err) {
      return { service: s.name, error: (err as Error).message };
    }
  }));
  const pub = src.publisher?.stats() ?? null;
  const tasks = src.reconciler?.status() ?? [];
  const now = Date.now();
  return {
    time: new Date(now).toISOString(),
    config: src.config.file,
    guests: guestStatus(src, samples),
    queues,
    services: services.map((s) => {
      const q = queues.find((x) => x.service === s.name);
      const batches = q && q.error === undefined ? (q.waiting ?? 0) + (q.active ?? 0) + (q.delayed ?? 0) : null;
      const last = s.worker?.lastHandledAt ?? null;
      return {
        ...s,
        lag: {
          batches,
          publisherEvents: pub ? Math.max(0, pub.logged - pub.published) : 0,
          sinceLastHandledMs: last === null ? null : now - last,
        },
        reconcile: tasks.filter((t) => t.service === s.name),
      };
    }),
    events: pub ? { ...pub, lost: src.eventLog?.failed() ?? 0 } : null,
    redis: { private: src.redis !== null, pid: src.redis?.pid ?? null, running: src.redis ? src.redis.running : null },
  };
}

/** The status as an administrator reads it in a terminal. */
export function formatStatus(s: PlatformStatus): string {
  const lines: string[] = [`xenfs status  ${s.time}  (${s.config})`, '', 'GUESTS'];
  for (const g of s.guests) {
    const ops = g.opsPerSec === null ? '-' : g.opsPerSec.toFixed(0);
    lines.push(`  ${g.name.padEnd(20)} ${g.connected ? 'connected   ' : 'disconnected'}  ops/s ${ops.padStart(7)}  read ${g.bytesRead}  written ${g.bytesWritten}  handles ${g.handles}`);
  }
  lines.push('', 'QUEUES');
  for (const q of s.queues) {
    lines.push(q.error !== undefined
      ? `  ${q.service.padEnd(20)} unavailable: ${q.error}`
      : `  ${q.service.padEnd(20)} waiting ${q.waiting}  active ${q.active}  delayed ${q.delayed}  failed ${q.failed}`);
  }
  lines.push('', 'SERVICES');
  for (const v of s.services) {
    const rec = v.reconcile.map((t) => `${t.guest}/${t.export} ${t.state} ${t.scanned} scanned ${t.emitted} found`).join('; ');
    lines.push(`  ${v.name.padEnd(20)} ${v.healthy ? 'healthy' : 'UNHEALTHY'}${v.detail ? ` (${v.detail})` : ''}  lag ${v.lag.publisherEvents} events + ${v.lag.batches ?? '?'} batches  handled ${v.worker?.eventsDone ?? 0}  failed ${v.worker?.eventsFailed ?? 0}  superseded ${v.superseded}`);
    if (rec) lines.push(`    reconcile: ${rec}`);
  }
  if (s.events) {
    lines.push('', `EVENTS  logged ${s.events.logged}  published ${s.events.published}${s.events.stalled ? `  STALLED: ${s.events.lastError}` : ''}  lost ${s.events.lost}`);
  }
  lines.push(`REDIS   ${s.redis.private ? `private, pid ${s.redis.pid ?? '-'}, ${s.redis.running ? 'running' : 'NOT RUNNING'}` : 'external'}`);
  return `${lines.join('\n')}\n`;
}

/** `xenfs status --failed`: each service's failed batches, newest first. */
export type FailedReport = Array<{ service: string; batches: FailedBatch[] }>;

export function formatFailed(report: FailedReport): string {
  const lines: string[] = [];
  for (const { service, batches } of report) {
    lines.push(`${service}: ${batches.length} failed batch${batches.length === 1 ? '' : 'es'}`);
    for (const b of batches) {
      const at = b.failedAt === null ? '-' : new Date(b.failedAt).toISOString();
      lines.push(`  ${b.jobId}  ${at}  after ${b.attemptsMade} attempt(s)`);
      for (const f of b.failures) lines.push(`    #${f.seq} ${f.kind} '${f.path}': ${f.message}`);
      if (b.failures.length === 0) lines.push(`    ${b.reason}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// The plugin runtime: loads the enabled services' modules, checks them and their settings, gives each its own
// context, and feeds it the batches of its queue (docs/plugins.md). What a service handled is recorded in its own
// database (RecordedState), which is what reconciliation compares the exports with after a crash, and what
// tells a late retry of an old event from the state a newer one already brought.
import { pathToFileURL } from 'node:url';
import type { Logger as Pino } from 'pino';
import type { ServerConfig, ServiceConfig } from '../config/config.ts';
import type { ChangeEvent } from '../events/change-event.ts';
import type { Subscription } from '../events/publisher.ts';
import type { RedisTarget } from '../events/redis-options.ts';
import { PermanentEventError, ServiceWorker, type EventOutcome as WorkerOutcome, type WorkerStats } from '../events/service-worker.ts';
import { checkDefinition } from './check-definition.ts';
import type { EventOutcome, PolicyHooks, ServiceDefinition, ServiceHealth, SnapshotHooks } from './plugin-api.ts';
import { RecordedState } from './recorded-state.ts';
import { createServiceContext, type ServiceContextHandle } from './service-context.ts';
import { validateServiceConfig } from './service-config.ts';
import { GuestReader } from './guest-reader.ts';
import { fromPino } from '../util/log.ts';

export interface ServiceRuntimeOptions {
  config: ServerConfig;
  target: RedisTarget;
  logger: Pino;
  policy: PolicyHooks;
  snapshots: SnapshotHooks;
  /** Run only these services (`xenfs worker --service NAME`); default: every enabled one. */
  only?: readonly string[];
  /** Batches a worker may keep after close() asked it to stop, before giving them back. Default 10 s. */
  closeTimeoutMs?: number;
}

/** A service as the runtime holds it. */
export interface LoadedService {
  readonly config: ServiceConfig;
  readonly definition: ServiceDefinition;
}

export interface ServiceStatus {
  name: string;
  healthy: boolean;
  detail?: string;
  worker: WorkerStats | null;
  /** Events passed over because the service had already handled a newer one for the same path. */
  superseded: number;
}

interface Running extends LoadedService {
  handle: ServiceContextHandle<Record<string, unknown>>;
  recorded: RecordedState | null;
  worker: ServiceWorker | null;
  superseded: number;
}

function toWorkerOutcome(o: EventOutcome | void): WorkerOutcome {
  if (!o || o.status === 'done' || o.status === 'skipped') return 'ok';
  return o.status === 'retry' ? new Error(o.reason) : new PermanentEventError(o.reason);
}

export class ServiceRuntime {
  readonly #opts: ServiceRuntimeOptions;
  readonly #reader: GuestReader;
  #loaded: LoadedService[] = [];
  #running: Running[] = [];

  constructor(opts: ServiceRuntimeOptions) {
    this.#opts = opts;
    this.#reader = new GuestReader(opts.config);
  }

  /** Imports and checks each selected service's module and settings; errors name the module or config key. */
  async load(): Promise<readonly LoadedService[]> {
    const { config, only } = this.#opts;
    const chosen = config.services.filter((s) => (only ? only.includes(s.name) : s.enabled));
    for (const name of only ?? []) {
      if (!chosen.some((s) => s.name === name)) throw new Error(`no service named '${name}' in ${config.file}`);
    }
    this.#loaded = [];
    for (const svc of chosen) {
      const mod = (await import(pathToFileURL(svc.module).href)) as { default?: unknown };
      const definition = checkDefinition(mod.default, svc.module);
      if (definition.name !== svc.name) {
        throw new Error(`${svc.module}: defines service '${definition.name}', configured as '${svc.name}'`);
      }
      this.#loaded.push({ config: svc, definition });
    }
    return this.#loaded;
  }

  /** What each loaded service subscribes to, for the publisher. */
  subscriptions(): Subscription[] {
    return this.#loaded.map(({ definition: d }) => ({ service: d.name, ...d.subscriptions }));
  }

  /** Starts each loaded service (its start() hook, then its queue's worker), in config order. */
  async start(): Promise<void> {
    for (const svc of this.#loaded) {
      const { config: sc, definition } = svc;
      const settings = validateServiceConfig(definition.configSchema, sc.config, {
        file: this.#opts.config.file,
        key: `services.${sc.name}.config`,
        lines: this.#opts.config.lines,
      }) as Record<string, unknown>;
      const handle = createServiceContext({
        name: sc.name,
        config: settings,
        stateDir: this.#opts.config.stateDir,
        logger: this.#opts.logger,
        reader: this.#reader,
        policy: this.#opts.policy,
        snapshots: this.#opts.snapshots,
      });
      const running: Running = { ...svc, handle, recorded: null, worker: null, superseded: 0 };
      this.#running.push(running);
      await definition.start?.(handle.context);
      running.recorded = new RecordedState(handle.context.db());
      running.worker = new ServiceWorker({
        target: this.#opts.target,
        service: sc.name,
        handler: (events) => this.#handle(running, events),
        concurrency: sc.concurrency,
        ...(sc.rateLimit ? { limiter: { max: sc.rateLimit.max, duration: sc.rateLimit.durationMs } } : {}),
        logger: fromPino(this.#opts.logger),
      });
    }
  }

  /** The recorded state of a running service (reconciliation reads and writes it). */
  recorded(service: string): RecordedState | null {
    return this.#running.find((r) => r.config.name === service)?.recorded ?? null;
  }

  async status(): Promise<ServiceStatus[]> {
    return Promise.all(this.#running.map(async (r) => {
      let health: ServiceHealth = { healthy: r.worker !== null };
      try {
        if (r.definition.health) health = await r.definition.health(r.handle.context);
      } catch (err) {
        health = { healthy: false, detail: `health check threw: ${(err as Error).message}` };
      }
      return { name: r.config.name, ...health, worker: r.worker?.stats ?? null, superseded: r.superseded };
    }));
  }

  /**
   * Stops in reverse order: each worker finishes (or gives back) its batches, then the service's stop() runs
   * with its database still open, then its context closes. Idempotent.
   */
  async stop(): Promise<void> {
    const timeoutMs = this.#opts.closeTimeoutMs ?? 10_000;
    for (const r of this.#running.splice(0).reverse()) {
      await r.worker?.close({ timeoutMs });
      r.handle.abort();
      try {
        await r.definition.stop?.(r.handle.context);
      } catch (err) {
        this.#opts.logger.error({ service: r.config.name, err: String(err) }, 'service stop() threw');
      }
      r.handle.close();
    }
  }

  // One batch: events a newer event already superseded (a retry that lost a race) are passed over, the rest go
  // to the service's handler, and what it handled is recorded.
  async #handle(r: Running, events: ChangeEvent[]): Promise<WorkerOutcome[]> {
    const recorded = r.recorded;
    const ctx = r.handle.context;
    const outcomes: WorkerOutcome[] = events.map(() => 'ok');
    // Indexes of the events still to hand over: not superseded by a newer event the service already handled.
    const fresh = events.flatMap((ev, i) => ((recorded?.get(ev.guest, ev.export, ev.path)?.seq ?? 0) > ev.seq ? [] : [i]));
    r.superseded += events.length - fresh.length;
    const todo = fresh.map((i) => events[i] as ChangeEvent);
    if (todo.length === 0) return outcomes;
    const def = r.definition;
    if (def.handleBatch) {
      const got = await def.handleBatch(todo, ctx);
      if (!Array.isArray(got) || got.length !== todo.length) {
        throw new Error(`service ${def.name}: handleBatch returned ${Array.isArray(got) ? got.length : typeof got} outcomes for ${todo.length} events`);
      }
      fresh.forEach((i, k) => (outcomes[i] = toWorkerOutcome(got[k])));
    } else if (def.handle) {
      for (const [k, i] of fresh.entries()) {
        try {
          outcomes[i] = toWorkerOutcome(await def.handle(todo[k] as ChangeEvent, ctx));
        } catch (err) {
          outcomes[i] = err instanceof Error ? err : new Error(String(err));
        }
      }
    }
    recorded?.applyMany(fresh.filter((i) => outcomes[i] === 'ok').map((i) => events[i] as ChangeEvent));
    return outcomes;
  }
}

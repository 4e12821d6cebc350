// The context a service runs in, put together from its pieces: its checked settings, a logger naming it, its
// own state (directory and database), the guest file reader and the server's hooks, and the signal that says
// it is being stopped. The runtime creates one per service and ends it in two steps around the service's own
// stop(): abort() first (so in-flight work can give up), close() after (so stop() can still use the database).
import type { Logger } from 'pino';
import type {
  GuestFileReader, PolicyHooks, ServiceContext, ServiceSettings, SnapshotHooks,
} from './plugin-api.ts';
import { ServiceState } from './service-state.ts';

export interface ServiceContextOptions<C extends object> {
  name: string;
  /** Settings already checked by validateServiceConfig. */
  config: C;
  /** dom0's state dir (ServerConfig.stateDir); the service gets `services/<name>` inside it. */
  stateDir: string;
  /** dom0's logger; the service gets a child of it. */
  logger: Logger;
  reader: GuestFileReader;
  policy: PolicyHooks;
  snapshots: SnapshotHooks;
}

export interface ServiceContextHandle<C extends object> {
  readonly context: ServiceContext<C>;
  /** Aborts context.signal with `reason`. Idempotent. */
  abort(reason?: unknown): void;
  /** Aborts (if not yet) and closes the service's database. Idempotent. */
  close(): void;
}

/** Creates the service's state directory (0700) and its context; the database opens on first use. */
export function createServiceContext<C extends object = ServiceSettings>(
  opts: ServiceContextOptions<C>,
): ServiceContextHandle<C> {
  const state = new ServiceState(opts.stateDir, opts.name);
  const stopping = new AbortController();
  const context: ServiceContext<C> = Object.freeze({
    name: opts.name,
    config: opts.config,
    logger: opts.logger.child({ service: opts.name }),
    stateDir: state.dir,
    db: () => state.db(),
    reader: opts.reader,
    policy: opts.policy,
    snapshots: opts.snapshots,
    signal: stopping.signal,
  });
  const abort = (reason?: unknown): void => {
    if (!stopping.signal.aborted) stopping.abort(reason ?? new Error(`service ${opts.name} is stopping`));
  };
  return {
    context,
    abort,
    close() {
      abort();
      state.close();
    },
  };
}

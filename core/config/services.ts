// The `services` section: which plugin services dom0 runs and how their jobs are retried and paced. A service's
// own settings (`config`) are kept as written here and checked later against its plugin's schema, once the
// module is loaded (core/plugins/service-config.ts); only then is it known what they should be.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reader } from './reader.ts';
import defaults from '../../config/defaults.json' with { type: 'json' };

/** What a service's name must look like, in the config and in its plugin's definition. */
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,63}$/;

export interface ServiceConfig {
  name: string;
  /** A disabled service keeps its config checked but is not started and gets no events. */
  enabled: boolean;
  /** Absolute path of the plugin module: `module` from the config, or the built-in services/<name>/index.ts. */
  module: string;
  /** Whether `module` is the built-in one (no `module` key). */
  builtin: boolean;
  /** Jobs (batches of events) the service handles at once. */
  concurrency: number;
  /** Tries of one job before it counts as failed (the first try included). */
  attempts: number;
  /** Milliseconds before the first retry; doubling after each (exponential backoff). */
  backoffMs: number;
  /** At most `max` jobs per `durationMs`, when set (a scanner sharing clamd with other tenants). */
  rateLimit?: { max: number; durationMs: number };
  /**
   * The service's own settings, unchecked: validated against its plugin's configSchema with the key
   * `services.<name>.config` once the module is loaded.
   */
  config: Record<string, unknown>;
}

const SERVICES_DIR = fileURLToPath(new URL('../../services/', import.meta.url));

const RANGES = {
  concurrency: [1, 256],
  attempts: [1, 100],
  backoffMs: [0, 3_600_000],
} as const;

const KNOWN = ['enabled', 'module', 'concurrency', 'attempts', 'backoffMs', 'rateLimit', 'config'];

function readService(r: Reader, name: string, v: unknown, dir: string): ServiceConfig {
  const key = `services.${name}`;
  if (!SERVICE_NAME.test(name)) r.fail(key, 'must be named by a-z, 0-9 and -, starting with a letter (at most 64)');
  // `{}` and `indexer:` (null) both mean "run it with defaults".
  const o = r.strictObj(v ?? {}, key, KNOWN);
  const svc: ServiceConfig = {
    name,
    enabled: r.opt(o.enabled, defaults.service.enabled, (x) => r.bool(x, `${key}.enabled`)),
    module: path.join(SERVICES_DIR, name, 'index.ts'),
    builtin: o.module === undefined,
    concurrency: r.opt(o.concurrency, defaults.service.concurrency, (x) => r.int(x, `${key}.concurrency`, ...RANGES.concurrency)),
    attempts: r.opt(o.attempts, defaults.service.attempts, (x) => r.int(x, `${key}.attempts`, ...RANGES.attempts)),
    backoffMs: r.opt(o.backoffMs, defaults.service.backoffMs, (x) => r.int(x, `${key}.backoffMs`, ...RANGES.backoffMs)),
    config: r.opt(o.config, {}, (x) => r.obj(x, `${key}.config`)),
  };
  if (o.module !== undefined) svc.module = path.resolve(dir, r.str(o.module, `${key}.module`));
  if (o.rateLimit !== undefined) {
    const rl = r.strictObj(o.rateLimit, `${key}.rateLimit`, ['max', 'durationMs']);
    svc.rateLimit = {
      max: r.int(rl.max, `${key}.rateLimit.max`, 1, 1_000_000),
      durationMs: r.int(rl.durationMs, `${key}.rateLimit.durationMs`, 1, 86_400_000),
    };
  }
  return svc;
}

/** The `services` map, in the order written; `dir` is the config file's directory (for relative `module`s). */
export function readServices(r: Reader, v: unknown, dir: string): ServiceConfig[] {
  if (v === undefined || v === null) return [];
  return Object.entries(r.obj(v, 'services')).map(([name, s]) => readService(r, name, s, dir));
}

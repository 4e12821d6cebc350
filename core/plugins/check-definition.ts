// Checking a loaded service module's default export before the runtime trusts it: the plugin is code from
// outside core, so a misspelt key, an unknown event kind or a missing handler must fail at load with the module
// file and the field named — never later, as a TypeError in the middle of the event flow.
import { EVENT_KINDS, isEventKind } from '../events/change-event.ts';
import { SERVICE_NAME } from '../config/services.ts';
import { Reader } from '../config/reader.ts';
import { checkConfigSchema } from './service-config.ts';
import type { ServiceDefinition } from './plugin-api.ts';

const KNOWN_KEYS = [
  'name', 'version', 'subscriptions', 'configSchema', 'handle', 'handleBatch', 'start', 'stop', 'health',
];
const FUNCTIONS = ['handle', 'handleBatch', 'start', 'stop', 'health'] as const;

function checkList(r: Reader, v: unknown, key: string, item: (x: unknown, k: string) => void): void {
  if (v === undefined) return;
  // An empty list would subscribe to nothing at all: almost certainly a mistake, and a silent one.
  if (!Array.isArray(v) || v.length === 0) r.fail(key, 'must be a non-empty array (leave it out for all)');
  v.forEach((x: unknown, i) => item(x, `${key}[${i}]`));
}

/**
 * Checks `def` (a module's default export) and returns it typed. `source` is the module's file, named in every
 * error (a ConfigError whose key is the bad field, e.g. `subscriptions.kinds[1]`).
 */
export function checkDefinition(def: unknown, source: string): ServiceDefinition {
  const r = new Reader(source);
  const o = r.obj(def, '(default export)');
  for (const k of Object.keys(o)) {
    if (!KNOWN_KEYS.includes(k)) r.fail(k, `is not a known key of a service definition (${KNOWN_KEYS.join(', ')})`);
  }
  if (typeof o.name !== 'string' || !SERVICE_NAME.test(o.name)) {
    r.fail('name', 'must be a-z, 0-9 and -, starting with a letter (at most 64)');
  }
  if (o.version !== undefined) r.str(o.version, 'version');
  const subs = r.strictObj(o.subscriptions, 'subscriptions', ['kinds', 'guests', 'exports']);
  checkList(r, subs.kinds, 'subscriptions.kinds', (x, k) => {
    if (!isEventKind(x)) r.fail(k, `must be one of ${EVENT_KINDS.join(', ')}`);
  });
  checkList(r, subs.guests, 'subscriptions.guests', (x, k) => r.str(x, k));
  checkList(r, subs.exports, 'subscriptions.exports', (x, k) => r.str(x, k));
  checkConfigSchema(o.configSchema, source);
  for (const k of FUNCTIONS) {
    if (o[k] !== undefined && typeof o[k] !== 'function') r.fail(k, 'must be a function');
  }
  if ((o.handle === undefined) === (o.handleBatch === undefined)) {
    r.fail(o.handle === undefined ? 'handle' : 'handleBatch', 'exactly one of handle and handleBatch must be given');
  }
  return o as unknown as ServiceDefinition;
}

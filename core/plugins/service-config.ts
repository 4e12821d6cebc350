// A service's own settings (`services.NAME.config`) checked against its plugin's configSchema: a small subset
// of JSON Schema, checked by our own code rather than a general validator so that every error is a ConfigError
// naming the config file, the full key (`services.indexer.config.batchSize`), its line and what was expected,
// and so that defaults are filled in as the Reader fills in dom0's own.
//
// The subset: type (object, string, integer, number, boolean, array), properties, required,
// additionalProperties (true or false), enum, minimum, maximum, minLength, maxLength, items, minItems,
// maxItems, default, description, title. A schema using anything else is refused when the plugin is loaded
// (checkConfigSchema), so an author never believes a `pattern` is enforced when it is not.
import { Reader, isObj } from '../config/reader.ts';
import type { KeyLines, Obj } from '../config/reader.ts';

export type ConfigSchemaType = 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';

/** A JSON Schema in the subset above. Every node names its `type`. */
export interface ConfigSchema {
  type: ConfigSchemaType;
  title?: string;
  description?: string;
  /** Filled in when the key is absent from the config (a copy; checked against this schema at load). */
  default?: unknown;
  enum?: ReadonlyArray<string | number | boolean>;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  properties?: Readonly<Record<string, ConfigSchema>>;
  required?: readonly string[];
  /** false: a key not in `properties` is an error (recommended: a misspelt key is then never ignored). */
  additionalProperties?: boolean;
  items?: ConfigSchema;
  minItems?: number;
  maxItems?: number;
}

const COMMON = ['type', 'title', 'description', 'default', 'enum'];
const KEYWORDS: Record<ConfigSchemaType, readonly string[]> = {
  object: [...COMMON, 'properties', 'required', 'additionalProperties'],
  array: [...COMMON, 'items', 'minItems', 'maxItems'],
  string: [...COMMON, 'minLength', 'maxLength'],
  integer: [...COMMON, 'minimum', 'maximum'],
  number: [...COMMON, 'minimum', 'maximum'],
  boolean: COMMON,
};

const TYPE_TESTS: Record<ConfigSchemaType, [(v: unknown) => boolean, string]> = {
  object: [isObj, 'an object'],
  array: [Array.isArray, 'an array'],
  string: [(v) => typeof v === 'string', 'a string'],
  integer: [(v) => typeof v === 'number' && Number.isSafeInteger(v), 'an integer'],
  number: [(v) => typeof v === 'number' && Number.isFinite(v), 'a number'],
  boolean: [(v) => typeof v === 'boolean', 'true or false'],
};

const isType = (v: unknown): v is ConfigSchemaType => typeof v === 'string' && Object.hasOwn(KEYWORDS, v);

/** "an integer in 1..100", "a number of at least 0", "a string of 1..64 characters", "an array of at most 5". */
function describe(s: ConfigSchema): string {
  const base = TYPE_TESTS[s.type][1];
  const [lo, hi, unit] = s.type === 'string' ? [s.minLength, s.maxLength, ' character']
    : s.type === 'array' ? [s.minItems, s.maxItems, ' item']
      : [s.minimum, s.maximum, ''];
  const units = (n: number): string => (unit === '' || n === 1 ? `${n}${unit}` : `${n}${unit}s`);
  if (lo !== undefined && hi !== undefined) return unit === '' ? `${base} in ${lo}..${hi}` : `${base} of ${lo}..${units(hi)}`;
  if (lo !== undefined) return `${base} of at least ${units(lo)}`;
  if (hi !== undefined) return `${base} of at most ${units(hi)}`;
  return base;
}

function within(n: number, lo: number | undefined, hi: number | undefined): boolean {
  return (lo === undefined || n >= lo) && (hi === undefined || n <= hi);
}

function checkValue(r: Reader, s: ConfigSchema, v: unknown, key: string): unknown {
  if (!TYPE_TESTS[s.type][0](v)) r.fail(key, `must be ${describe(s)}`);
  if (s.enum !== undefined && !s.enum.some((e) => e === v)) {
    r.fail(key, `must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  }
  if (typeof v === 'number' && !within(v, s.minimum, s.maximum)) r.fail(key, `must be ${describe(s)}`);
  if (typeof v === 'string' && !within(v.length, s.minLength, s.maxLength)) r.fail(key, `must be ${describe(s)}`);
  if (Array.isArray(v)) {
    if (!within(v.length, s.minItems, s.maxItems)) r.fail(key, `must be ${describe(s)}`);
    return v.map((item: unknown, i) => (s.items ? checkValue(r, s.items, item, `${key}[${i}]`) : item));
  }
  if (isObj(v)) return checkObject(r, s, v, key);
  return v;
}

function checkObject(r: Reader, s: ConfigSchema, v: Obj, key: string): Obj {
  const props = s.properties ?? {};
  const out: Obj = {};
  for (const [k, value] of Object.entries(v)) {
    const ps = props[k];
    if (ps === undefined && s.additionalProperties === false) {
      r.fail(`${key}.${k}`, `is not a known key (${Object.keys(props).join(', ') || 'none'})`);
    }
    out[k] = ps === undefined ? value : checkValue(r, ps, value, `${key}.${k}`);
  }
  for (const [k, ps] of Object.entries(props)) {
    // A default is checked when the plugin loads, and copied so no two services share one object; going
    // through checkValue fills in the defaults inside a default object too.
    if (out[k] === undefined && ps.default !== undefined) out[k] = checkValue(r, ps, structuredClone(ps.default), `${key}.${k}`);
  }
  for (const k of s.required ?? []) {
    if (out[k] === undefined) r.fail(`${key}.${k}`, `is required (${describe(props[k] ?? { type: 'object' })})`);
  }
  return out;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export interface ConfigLocation {
  /** The config file the settings were read from. */
  file: string;
  /** Their key in it, e.g. `services.indexer.config`. */
  key: string;
  /** Lines of the file's keys (ServerConfig.lines), so that errors name the line. */
  lines?: KeyLines;
}

/**
 * Checks a service's settings against its plugin's (already checked) schema and returns them with defaults
 * filled in, deeply frozen. Throws ConfigError naming `at.file`, the full key and the line.
 */
export function validateServiceConfig(schema: ConfigSchema, value: unknown, at: ConfigLocation): Readonly<Record<string, unknown>> {
  const r = new Reader(at.file, at.lines);
  // A copy, frozen: the service cannot change what dom0 read, nor one part of its config under another.
  const out = checkValue(r, schema, structuredClone(value ?? {}), at.key);
  return deepFreeze(out) as Readonly<Record<string, unknown>>;
}

function checkBound(r: Reader, o: Obj, k: string, key: string, integer: boolean): void {
  if (o[k] === undefined) return;
  const v = o[k];
  const ok = typeof v === 'number' && (integer ? Number.isSafeInteger(v) && v >= 0 : Number.isFinite(v));
  if (!ok) r.fail(`${key}.${k}`, integer ? 'must be a non-negative integer' : 'must be a finite number');
}

/**
 * Checks that `v` is a schema in the supported subset, its defaults valid against it; at the root (`key` is
 * `configSchema`) it must describe an object. `source` is the plugin module, named in errors.
 */
export function checkConfigSchema(v: unknown, source: string, key = 'configSchema'): ConfigSchema {
  const r = new Reader(source);
  const o = r.obj(v, key);
  const type = isType(o.type) ? o.type : r.fail(`${key}.type`, `must be one of ${Object.keys(KEYWORDS).join(', ')}`);
  if (key === 'configSchema' && type !== 'object') r.fail(`${key}.type`, "must be 'object': a service's config is a map");
  const known = KEYWORDS[type];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) r.fail(`${key}.${k}`, `is not supported for type ${type} (supported: ${known.join(', ')})`);
  }
  for (const k of ['title', 'description']) if (o[k] !== undefined && typeof o[k] !== 'string') r.fail(`${key}.${k}`, 'must be a string');
  for (const k of ['minimum', 'maximum']) checkBound(r, o, k, key, false);
  for (const k of ['minLength', 'maxLength', 'minItems', 'maxItems']) checkBound(r, o, k, key, true);
  if (o.enum !== undefined) {
    const ok = Array.isArray(o.enum) && o.enum.length > 0 && o.enum.every((e) => ['string', 'number', 'boolean'].includes(typeof e));
    if (!ok) r.fail(`${key}.enum`, 'must be a non-empty array of strings, numbers or booleans');
  }
  if (o.additionalProperties !== undefined && typeof o.additionalProperties !== 'boolean') {
    r.fail(`${key}.additionalProperties`, 'must be true or false (schemas for extra keys are not supported)');
  }
  const schema = { ...o } as unknown as ConfigSchema & Record<string, unknown>;
  if (o.items !== undefined) schema.items = checkConfigSchema(o.items, source, `${key}.items`);
  if (o.properties !== undefined) {
    const props: Record<string, ConfigSchema> = {};
    for (const [name, ps] of Object.entries(r.obj(o.properties, `${key}.properties`))) {
      props[name] = checkConfigSchema(ps, source, `${key}.properties.${name}`);
    }
    schema.properties = props;
  }
  if (o.required !== undefined) {
    if (!Array.isArray(o.required) || !o.required.every((n) => typeof n === 'string' && Object.hasOwn(schema.properties ?? {}, n))) {
      r.fail(`${key}.required`, 'must be an array of names from properties');
    }
  }
  // A default that breaks its own schema would turn up as a config error the administrator did not cause.
  if (o.default !== undefined) checkValue(r, schema, o.default, `${key}.default`);
  return schema;
}

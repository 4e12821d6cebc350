// A service's settings checked against its plugin's schema (our own JSON-Schema subset): defaults filled in,
// every error a ConfigError naming the config file, the full key, its line and what was expected; and the
// schema itself checked when the plugin loads, so unsupported keywords are never silently ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../core/errors.ts';
import { parseConfigText } from '../../../core/config/reader.ts';
import { checkConfigSchema, validateServiceConfig } from '../../../core/plugins/service-config.ts';
import type { ConfigSchema } from '../../../core/plugins/service-config.ts';

const FILE = '/etc/xenfs/xenfs.yaml';
const KEY = 'services.indexer.config';
const MODULE = '/opt/plugins/indexer.ts';

const schema: ConfigSchema = checkConfigSchema({
  type: 'object',
  additionalProperties: false,
  required: ['engine'],
  properties: {
    engine: { type: 'string', enum: ['sqlite', 'meilisearch'] },
    batchSize: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    ratio: { type: 'number', minimum: 0, maximum: 1 },
    verbose: { type: 'boolean', default: false },
    name: { type: 'string', minLength: 1, maxLength: 8 },
    include: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 3, default: ['**/*.txt'] },
    remote: {
      type: 'object',
      additionalProperties: false,
      properties: { url: { type: 'string' }, timeoutMs: { type: 'integer', minimum: 1, default: 5000 } },
    },
    extra: { type: 'object' },
  },
}, MODULE);

function expectError(value: unknown, key: string, message: RegExp, lines = {}): void {
  assert.throws(() => validateServiceConfig(schema, value, { file: FILE, key: KEY, lines }), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.file, FILE);
    assert.equal(err.key, key);
    assert.match(err.message, message);
    return true;
  }, key);
}

test('defaults are filled in, nested ones only where their object is given; the result is frozen', () => {
  const cfg = validateServiceConfig(schema, { engine: 'sqlite', remote: { url: 'http://x' } }, { file: FILE, key: KEY });
  assert.deepEqual(cfg, {
    engine: 'sqlite', remote: { url: 'http://x', timeoutMs: 5000 }, batchSize: 50, verbose: false, include: ['**/*.txt'],
  });
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.remote) && Object.isFrozen(cfg.include));
  // Each service gets its own copy of a default, never the schema's object.
  const again = validateServiceConfig(schema, { engine: 'sqlite' }, { file: FILE, key: KEY });
  assert.notEqual(again.include, cfg.include);
  assert.deepEqual(schema.properties?.include?.default, ['**/*.txt']);
  assert.ok(!Object.isFrozen(schema.properties?.include?.default));
});

test('the input is not changed, and given values win over defaults', () => {
  const input = { engine: 'meilisearch', batchSize: 7, extra: { anything: [1, 2] } };
  const cfg = validateServiceConfig(schema, input, { file: FILE, key: KEY });
  assert.equal(cfg.batchSize, 7);
  assert.deepEqual(cfg.extra, { anything: [1, 2] });
  assert.deepEqual(input, { engine: 'meilisearch', batchSize: 7, extra: { anything: [1, 2] } });
  assert.ok(!Object.isFrozen(input.extra));
});

const errors: Array<[string, unknown, string, RegExp]> = [
  ['not an object', 'fast', KEY, /must be an object/],
  ['required missing', {}, `${KEY}.engine`, /is required/],
  ['enum', { engine: 'lucene' }, `${KEY}.engine`, /one of "sqlite", "meilisearch"/],
  ['integer with a fraction', { engine: 'sqlite', batchSize: 2.5 }, `${KEY}.batchSize`, /an integer in 1\.\.1000/],
  ['integer as a string', { engine: 'sqlite', batchSize: '10' }, `${KEY}.batchSize`, /an integer/],
  ['below minimum', { engine: 'sqlite', batchSize: 0 }, `${KEY}.batchSize`, /in 1\.\.1000/],
  ['above maximum', { engine: 'sqlite', batchSize: 1001 }, `${KEY}.batchSize`, /in 1\.\.1000/],
  ['number out of range', { engine: 'sqlite', ratio: 1.5 }, `${KEY}.ratio`, /a number in 0\.\.1/],
  ['number infinite', { engine: 'sqlite', ratio: Infinity }, `${KEY}.ratio`, /a number/],
  ['boolean as a string', { engine: 'sqlite', verbose: 'yes' }, `${KEY}.verbose`, /true or false/],
  ['string too short', { engine: 'sqlite', name: '' }, `${KEY}.name`, /a string of 1\.\.8 characters/],
  ['string too long', { engine: 'sqlite', name: 'abcdefghi' }, `${KEY}.name`, /1\.\.8/],
  ['array item', { engine: 'sqlite', include: ['a', ''] }, `${KEY}.include[1]`, /a string of at least 1 character$/],
  ['array too long', { engine: 'sqlite', include: ['a', 'b', 'c', 'd'] }, `${KEY}.include`, /at most 3 items/],
  ['array not an array', { engine: 'sqlite', include: 'a' }, `${KEY}.include`, /an array/],
  ['unknown key', { engine: 'sqlite', batchsize: 5 }, `${KEY}.batchsize`, /not a known key \(engine, batchSize/],
  ['nested unknown key', { engine: 'sqlite', remote: { uri: 'x' } }, `${KEY}.remote.uri`, /not a known key/],
  ['nested type', { engine: 'sqlite', remote: { timeoutMs: 0 } }, `${KEY}.remote.timeoutMs`, /at least 1/],
];
for (const [what, value, key, message] of errors) {
  test(`service config error: ${what} names ${key}`, () => expectError(value, key, message));
}

test('errors name the line the key is written on in the config file', () => {
  const text = 'services:\n  indexer:\n    config:\n      engine: sqlite\n      batchSize: 0\n';
  const { raw, lines } = parseConfigText(text, FILE);
  const value = (raw as { services: { indexer: { config: unknown } } }).services.indexer.config;
  assert.throws(() => validateServiceConfig(schema, value, { file: FILE, key: KEY, lines }), (err: unknown) =>
    err instanceof ConfigError && err.line === 5 &&
    err.message === `${FILE}: ${KEY}.batchSize (line 5): must be an integer in 1..1000`);
  // A missing required key is reported where its object is.
  const { raw: raw2, lines: lines2 } = parseConfigText('services:\n  indexer:\n    config:\n      batchSize: 3\n', FILE);
  const v2 = (raw2 as { services: { indexer: { config: unknown } } }).services.indexer.config;
  assert.throws(() => validateServiceConfig(schema, v2, { file: FILE, key: KEY, lines: lines2 }),
    (err: unknown) => err instanceof ConfigError && err.key === `${KEY}.engine` && err.line === 3);
});

test('additional properties are kept when the schema does not say false (JSON Schema\'s default)', () => {
  const open = checkConfigSchema({ type: 'object', properties: { a: { type: 'integer' } } }, MODULE);
  assert.deepEqual(validateServiceConfig(open, { a: 1, b: 'x' }, { file: FILE, key: KEY }), { a: 1, b: 'x' });
  assert.deepEqual(validateServiceConfig(open, undefined, { file: FILE, key: KEY }), {});
});

const badSchemas: Array<[string, unknown, string, RegExp]> = [
  ['not an object', 'object', 'configSchema', /must be an object/],
  ['root not an object schema', { type: 'string' }, 'configSchema.type', /'object'/],
  ['unknown type', { type: 'object', properties: { a: { type: 'float' } } }, 'configSchema.properties.a.type', /one of/],
  ['missing type', { type: 'object', properties: { a: {} } }, 'configSchema.properties.a.type', /one of/],
  ['unsupported keyword', { type: 'object', properties: { a: { type: 'string', pattern: '^x' } } },
    'configSchema.properties.a.pattern', /not supported for type string/],
  ['keyword of another type', { type: 'object', properties: { a: { type: 'string', minimum: 1 } } },
    'configSchema.properties.a.minimum', /not supported/],
  ['additionalProperties as a schema', { type: 'object', additionalProperties: { type: 'string' } },
    'configSchema.additionalProperties', /true or false/],
  ['required not in properties', { type: 'object', properties: {}, required: ['a'] }, 'configSchema.required', /names from properties/],
  ['default breaking its schema', { type: 'object', properties: { n: { type: 'integer', maximum: 5, default: 9 } } },
    'configSchema.properties.n.default', /an integer of at most 5/],
  ['empty enum', { type: 'object', properties: { e: { type: 'string', enum: [] } } }, 'configSchema.properties.e.enum', /non-empty/],
  ['negative minLength', { type: 'object', properties: { s: { type: 'string', minLength: -1 } } },
    'configSchema.properties.s.minLength', /non-negative integer/],
  ['bad items', { type: 'object', properties: { l: { type: 'array', items: { type: 'list' } } } },
    'configSchema.properties.l.items.type', /one of/],
];
for (const [what, s, key, message] of badSchemas) {
  test(`schema error: ${what} names ${key} and the module`, () => {
    assert.throws(() => checkConfigSchema(s, MODULE), (err: unknown) =>
      err instanceof ConfigError && err.file === MODULE && err.key === key && message.test(err.message), key);
  });
}

test('a default object gets the defaults of its own properties filled in', () => {
  const nested = checkConfigSchema({
    type: 'object',
    properties: {
      clamd: {
        type: 'object', default: {},
        properties: { socket: { type: 'string', default: '/run/clamd.sock' }, timeoutMs: { type: 'integer', default: 30000 } },
      },
    },
  }, MODULE);
  assert.deepEqual(validateServiceConfig(nested, {}, { file: FILE, key: KEY }),
    { clamd: { socket: '/run/clamd.sock', timeoutMs: 30000 } });
  assert.deepEqual(validateServiceConfig(nested, { clamd: { timeoutMs: 5 } }, { file: FILE, key: KEY }),
    { clamd: { socket: '/run/clamd.sock', timeoutMs: 5 } });
});

// The `services` section: per-service switches, module paths, retry and pacing, and the service's own settings
// kept unchecked for its plugin's schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../core/errors.ts';
import { parseConfig } from '../../../core/config/config.ts';
import defaults from '../../../config/defaults.json' with { type: 'json' };

const FILE = '/etc/xenfs/xenfs.yaml';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const base = (services: unknown): Record<string, unknown> => ({
  stateDir: 'state', guests: [{ name: 'g1', secret: 's', exports: [{ name: 'home', path: 'home' }] }], services,
});

test('no services section: no services', () => {
  assert.deepEqual(parseConfig({ ...base(undefined) }, FILE).services, []);
  assert.deepEqual(parseConfig(base(null), FILE).services, []);
});

test('a service with nothing set gets the defaults and the built-in module', () => {
  const [svc] = parseConfig(base({ indexer: {} }), FILE).services;
  assert.deepEqual(svc, {
    name: 'indexer', enabled: true, module: path.join(ROOT, 'services/indexer/index.ts'), builtin: true,
    concurrency: defaults.service.concurrency, attempts: defaults.service.attempts,
    backoffMs: defaults.service.backoffMs, config: {},
  });
  assert.deepEqual(defaults.service, { enabled: true, concurrency: 1, attempts: 5, backoffMs: 1000 });
  // `indexer:` with no value in YAML is null: the same as {}.
  assert.equal(parseConfig(base({ indexer: null }), FILE).services[0]?.enabled, true);
});

test('every key is read; module resolves against the config file; order is kept', () => {
  const services = parseConfig(base({
    'file-count': {
      enabled: false, module: 'plugins/file-count.ts', concurrency: 4, attempts: 1, backoffMs: 0,
      rateLimit: { max: 10, durationMs: 1000 }, config: { countDirectories: true },
    },
    backup: { module: '/opt/xenfs/backup.js' },
  }), FILE).services;
  assert.deepEqual(services.map((s) => s.name), ['file-count', 'backup']);
  assert.deepEqual(services[0], {
    name: 'file-count', enabled: false, module: '/etc/xenfs/plugins/file-count.ts', builtin: false,
    concurrency: 4, attempts: 1, backoffMs: 0, rateLimit: { max: 10, durationMs: 1000 },
    config: { countDirectories: true },
  });
  assert.equal(services[1]?.module, '/opt/xenfs/backup.js');
  assert.equal(services[1]?.builtin, false);
});

const errors: Array<[string, unknown, string, RegExp?]> = [
  ['services not an object', ['indexer'], 'services'],
  ['a name with capitals', { Indexer: {} }, 'services.Indexer', /a-z/],
  ['a name with a slash', { 'a/b': {} }, 'services.a/b'],
  ['a name starting with a digit', { '1x': {} }, 'services.1x'],
  ['a name too long', { ['a'.repeat(65)]: {} }, `services.${'a'.repeat(65)}`],
  ['a service not an object', { indexer: true }, 'services.indexer'],
  ['unknown key', { indexer: { enable: false } }, 'services.indexer.enable', /not a known key/],
  ['enabled not a boolean', { indexer: { enabled: 'no' } }, 'services.indexer.enabled'],
  ['module empty', { indexer: { module: '' } }, 'services.indexer.module'],
  ['concurrency 0', { indexer: { concurrency: 0 } }, 'services.indexer.concurrency'],
  ['concurrency huge', { indexer: { concurrency: 1000 } }, 'services.indexer.concurrency'],
  ['attempts 0', { indexer: { attempts: 0 } }, 'services.indexer.attempts'],
  ['backoffMs negative', { indexer: { backoffMs: -5 } }, 'services.indexer.backoffMs'],
  ['rateLimit not an object', { indexer: { rateLimit: 10 } }, 'services.indexer.rateLimit'],
  ['rateLimit without max', { indexer: { rateLimit: { durationMs: 1000 } } }, 'services.indexer.rateLimit.max'],
  ['rateLimit durationMs 0', { indexer: { rateLimit: { max: 1, durationMs: 0 } } }, 'services.indexer.rateLimit.durationMs'],
  ['rateLimit unknown key', { indexer: { rateLimit: { max: 1, durationMs: 1, burst: 2 } } }, 'services.indexer.rateLimit.burst'],
  ['config not an object', { indexer: { config: 'fast' } }, 'services.indexer.config'],
];
for (const [what, services, key, message] of errors) {
  test(`services error: ${what} names ${key}`, () => {
    assert.throws(() => parseConfig(base(services), FILE), (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.key, key);
      if (message) assert.match(err.message, message);
      return true;
    });
  });
}

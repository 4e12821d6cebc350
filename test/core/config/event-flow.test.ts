// The `redis` and `events` sections: where the queues live and how events are batched; every bad value is a
// ConfigError naming its key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../../core/errors.ts';
import { parseConfig } from '../../../core/config/config.ts';
import defaults from '../../../config/defaults.json' with { type: 'json' };

const FILE = '/etc/xenfs/xenfs.yaml';
const base = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  stateDir: 'state', guests: [{ name: 'g1', secret: 's', exports: [{ name: 'home', path: 'home' }] }], ...over,
});

function assertKey(raw: unknown, key: string, message?: RegExp): void {
  assert.throws(() => parseConfig(raw, FILE), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key);
    if (message) assert.match(err.message, message);
    return true;
  }, key);
}

test('no redis section: dom0 runs a private redis-server under stateDir', () => {
  assert.deepEqual(parseConfig(base(), FILE).redis, { mode: 'private', dir: '/etc/xenfs/state/redis' });
});

test('redis: a socket, one server or a cluster, with an optional password', () => {
  assert.deepEqual(parseConfig(base({ redis: { path: 'run/redis.sock' } }), FILE).redis,
    { mode: 'socket', path: '/etc/xenfs/run/redis.sock' });
  assert.deepEqual(parseConfig(base({ redis: { host: 'r.example', password: 'pw' } }), FILE).redis,
    { mode: 'server', host: 'r.example', port: 6379, password: 'pw' });
  assert.deepEqual(parseConfig(base({ redis: { host: '10.0.0.1', port: 7000 } }), FILE).redis,
    { mode: 'server', host: '10.0.0.1', port: 7000 });
  assert.deepEqual(parseConfig(base({ redis: { cluster: [{ host: 'a', port: 7000 }, { host: 'b' }] } }), FILE).redis,
    { mode: 'cluster', nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 6379 }] });
});

const redisErrors: Array<[string, unknown, string, RegExp?]> = [
  ['not an object', 'localhost', 'redis'],
  ['empty', {}, 'redis', /path.*host.*cluster/],
  ['two kinds at once', { path: '/r.sock', host: 'h' }, 'redis', /not path and host/],
  ['unknown key', { hots: 'h' }, 'redis.hots', /not a known key/],
  ['empty path', { path: '' }, 'redis.path'],
  ['port without host', { path: '/r.sock', port: 1 }, 'redis.port'],
  ['port 0', { host: 'h', port: 0 }, 'redis.port'],
  ['port too big', { host: 'h', port: 65536 }, 'redis.port'],
  ['port as a string', { host: 'h', port: '6379' }, 'redis.port'],
  ['empty cluster', { cluster: [] }, 'redis.cluster'],
  ['cluster not an array', { cluster: { host: 'h' } }, 'redis.cluster'],
  ['cluster node without host', { cluster: [{ host: 'a' }, { port: 1 }] }, 'redis.cluster[1].host'],
  ['cluster node unknown key', { cluster: [{ host: 'a', db: 1 }] }, 'redis.cluster[0].db'],
  ['empty password', { host: 'h', password: '' }, 'redis.password'],
  ['password and passwordFile', { host: 'h', password: 'a', passwordFile: 'f' }, 'redis.passwordFile', /choose one/],
  ['missing passwordFile', { host: 'h', passwordFile: '/nonexistent/xenfs-redis-pw' }, 'redis.passwordFile', /cannot be read/],
];
for (const [what, redis, key, message] of redisErrors) {
  test(`redis error: ${what} names ${key}`, () => assertKey(base({ redis }), key, message));
}

test('redis.passwordFile: read relative to the config file, trailing newline dropped, empty refused', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-redis-pw-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'pw'), 's3cret\n', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'empty'), '\n', { mode: 0o600 });
  const file = path.join(dir, 'xenfs.yaml');
  assert.deepEqual(parseConfig(base({ redis: { path: '/r.sock', passwordFile: 'pw' } }), file).redis,
    { mode: 'socket', path: '/r.sock', password: 's3cret' });
  assert.throws(() => parseConfig(base({ redis: { path: '/r.sock', passwordFile: 'empty' } }), file),
    (err: unknown) => err instanceof ConfigError && err.key === 'redis.passwordFile' && /empty/.test(err.message));
});

test('events: defaults from config/defaults.json, each key settable', () => {
  assert.deepEqual(parseConfig(base(), FILE).events, defaults.events);
  assert.deepEqual(defaults.events, { batchMax: 100, batchWindowMs: 10, logSegmentBytes: 64 * 1024 * 1024, watchHost: true });
  assert.deepEqual(parseConfig(base({ events: { batchMax: 5, watchHost: false } }), FILE).events,
    { ...defaults.events, batchMax: 5, watchHost: false });
  assert.deepEqual(parseConfig(base({ events: { batchWindowMs: 0, logSegmentBytes: 65536 } }), FILE).events,
    { ...defaults.events, batchWindowMs: 0, logSegmentBytes: 65536 });
});

const eventErrors: Array<[string, unknown, string]> = [
  ['not an object', [], 'events'],
  ['unknown key', { batchSize: 5 }, 'events.batchSize'],
  ['batchMax 0', { batchMax: 0 }, 'events.batchMax'],
  ['batchMax fractional', { batchMax: 1.5 }, 'events.batchMax'],
  ['batchWindowMs negative', { batchWindowMs: -1 }, 'events.batchWindowMs'],
  ['batchWindowMs too long', { batchWindowMs: 60_000 }, 'events.batchWindowMs'],
  ['logSegmentBytes too small', { logSegmentBytes: 1000 }, 'events.logSegmentBytes'],
  ['watchHost not a boolean', { watchHost: 'yes' }, 'events.watchHost'],
];
for (const [what, events, key] of eventErrors) {
  test(`events error: ${what} names ${key}`, () => assertKey(base({ events }), key));
}

// dom0's config: every error is a ConfigError naming the file and the key, so an administrator can go straight
// to the line; a valid file gets its defaults and its relative paths resolved against the file's directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../core/errors.ts';
import { loadConfig, parseConfig } from '../../../core/config/config.ts';
import defaults from '../../../config/defaults.json' with { type: 'json' };

const FILE = '/etc/xenfs/config-test.json';

type Json = Record<string, unknown>;

const guest = (over: Json = {}): Json => ({ name: 'g1', secret: 's', exports: [{ name: 'home', path: 'home' }], ...over });
const base = (over: Json = {}): Json => ({ stateDir: 'state', guests: [guest()], ...over });

function assertConfigError(fn: () => unknown, key: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'XENFS_ERR_CONFIG');
    assert.equal(err.key, key);
    assert.ok(err.message.includes(key), `message '${err.message}' should name ${key}`);
    assert.ok(err.message.startsWith(`${err.file}: `), `message '${err.message}' should name the file`);
    if (message) assert.match(err.message, message);
    return true;
  }, key);
}

const cases: Array<[string, unknown, string, RegExp?]> = [
  ['not an object', [], '(top level)'],
  ['null', null, '(top level)'],
  ['unknown top-level key', base({ guest: [] }), 'guest', /not a known key/],
  ['stateDir missing', { guests: [guest()] }, 'stateDir'],
  ['stateDir empty', base({ stateDir: '' }), 'stateDir'],
  ['guests missing', { stateDir: 'state' }, 'guests'],
  ['guests empty', base({ guests: [] }), 'guests'],
  ['guests not an array', base({ guests: { g1: guest() } }), 'guests'],
  ['guest not an object', base({ guests: ['g1'] }), 'guests[0]'],
  ['guest without a name', base({ guests: [guest({ name: undefined })] }), 'guests[0].name'],
  ['guest name with a slash', base({ guests: [guest({ name: 'a/b' })] }), 'guests[0].name'],
  ['guest name too long', base({ guests: [guest({ name: 'g'.repeat(65) })] }), 'guests[0].name'],
  ['duplicate guest', base({ guests: [guest(), guest()] }), 'guests[1].name', /duplicates/],
  ['no secret and no uid', base({ guests: [guest({ secret: undefined })] }), 'guests[0]', /secret or a uid/],
  ['empty secret', base({ guests: [guest({ secret: '' })] }), 'guests[0].secret'],
  ['secret not a string', base({ guests: [guest({ secret: 1234 })] }), 'guests[0].secret'],
  ['negative uid', base({ guests: [guest({ secret: undefined, uid: -1 })] }), 'guests[0].uid'],
  ['fractional uid', base({ guests: [guest({ uid: 1.5 })] }), 'guests[0].uid'],
  ['uid as a string', base({ guests: [guest({ uid: '1000' })] }), 'guests[0].uid'],
  ['exports missing', base({ guests: [guest({ exports: undefined })] }), 'guests[0].exports'],
  ['exports empty', base({ guests: [guest({ exports: [] })] }), 'guests[0].exports'],
  ['unknown shared export', base({ guests: [guest({ exports: ['pub'] })] }), 'guests[0].exports[0]', /pub/],
  ['export without a path',
    base({ guests: [guest({ exports: [{ name: 'a', path: 'a' }, { name: 'b' }] })] }), 'guests[0].exports[1].path'],
  ['export without a name', base({ guests: [guest({ exports: [{ path: 'a' }] })] }), 'guests[0].exports[0].name'],
  ['writes neither passthrough nor dom0',
    base({ guests: [guest({ exports: [{ name: 'a', path: 'a', writes: 'guest' }] })] }), 'guests[0].exports[0].writes'],
  ['readOnly not a boolean',
    base({ guests: [guest({ exports: [{ name: 'a', path: 'a', readOnly: 'yes' }] })] }), 'guests[0].exports[0].readOnly'],
  ['second guest\'s error', base({ guests: [guest(), guest({ name: 'g2', secret: 7 })] }), 'guests[1].secret'],
  ['limit below its minimum', base({ limits: { maxHandles: 3 } }), 'limits.maxHandles', /4\.\./],
  ['limit above its maximum', base({ limits: { maxRingSlots: 512 } }), 'limits.maxRingSlots'],
  ['limit not an integer', base({ limits: { spinMicros: 1.5 } }), 'limits.spinMicros'],
  ['huge limit', base({ limits: { maxNodes: 1e300 } }), 'limits.maxNodes'],
  ['guest limit below its minimum',
    base({ guests: [guest({ limits: { maxNodes: 15 } })] }), 'guests[0].limits.maxNodes', /16\.\./],
  ['unknown guest limit', base({ guests: [guest({ limits: { maxFiles: 10 } })] }), 'guests[0].limits.maxFiles'],
  ['limits not an object', base({ limits: 5 }), 'limits'],
  ['shared exports not an object', base({ exports: [] }), 'exports'],
  ['shared export not an object', base({ exports: { pub: 'pub' } }), 'exports.pub'],
  ['shared export without a path', base({ exports: { pub: {} } }), 'exports.pub.path'],
  ['listen not an object', base({ listen: true }), 'listen'],
  ['listen.unix not a boolean', base({ listen: { unix: 'yes' } }), 'listen.unix'],
  ['listen.tcp not an object', base({ listen: { tcp: 8080 } }), 'listen.tcp'],
  ['TCP port out of range', base({ listen: { tcp: { port: 70000 } } }), 'listen.tcp.port'],
  ['TCP host empty', base({ listen: { tcp: { host: '' } } }), 'listen.tcp.host'],
  ['no workers', base({ workers: 0 }), 'workers'],
  ['too many workers', base({ workers: 65 }), 'workers'],
];

for (const [what, raw, key, message] of cases) {
  test(`config error: ${what} names ${key}`, () => {
    assertConfigError(() => parseConfig(raw, FILE), key, message);
  });
}

// A misspelt key must not be ignored: `readonly` for `readOnly` would silently make an export writable.
const misspelt: Array<[string, unknown, string]> = [
  ['export key', base({ guests: [guest({ exports: [{ name: 'a', path: 'a', readonly: true }] })] }),
    'guests[0].exports[0].readonly'],
  ['guest key', base({ guests: [guest({ uid: 1000, secert: 'x' })] }), 'guests[0].secert'],
  ['shared export key', base({ exports: { pub: { path: 'p', writable: true } } }), 'exports.pub.writable'],
  ['listen key', base({ listen: { unixx: true } }), 'listen.unixx'],
  ['listen.tcp key', base({ listen: { tcp: { prot: 1 } } }), 'listen.tcp.prot'],
];
for (const [what, raw, key] of misspelt) {
  test(`config error: an unknown ${what} is refused, not ignored (${key})`, () => {
    assertConfigError(() => parseConfig(raw, FILE), key, /not a known key/);
  });
}

test('config error: two exports of one guest with the same name', () => {
  const exports = [{ name: 'home', path: 'a' }, { name: 'home', path: 'b' }];
  assertConfigError(() => parseConfig(base({ guests: [guest({ exports })] }), FILE), 'guests[0].exports[1].name');
  const twice = base({ exports: { pub: { path: 'p' } }, guests: [guest({ exports: ['pub', 'pub'] })] });
  assertConfigError(() => parseConfig(twice, FILE), 'guests[0].exports[1]');
});

test('config error: a shared export cannot be made writable', () => {
  const raw = base({ exports: { pub: { path: 'p', readOnly: false } } });
  assertConfigError(() => parseConfig(raw, FILE), 'exports.pub.readOnly', /read-only/);
  assert.equal(parseConfig(base({ exports: { pub: { path: 'p', readOnly: true } } }), FILE).guests.length, 1);
});

test('a guest\'s cache mode: none unless the config says auto; anything else names the key', () => {
  assert.equal(parseConfig(base(), FILE).guests[0]?.cache, 'none');
  assert.equal(parseConfig(base({ guests: [guest({ cache: 'auto' })] }), FILE).guests[0]?.cache, 'auto');
  assertConfigError(() => parseConfig(base({ guests: [guest({ cache: 'always' })] }), FILE), 'guests[0].cache', /'none' or 'auto'/);
  assertConfigError(() => parseConfig(base({ guests: [guest({ cache: true })] }), FILE), 'guests[0].cache');
});

test('a valid config: defaults filled in, relative paths resolved against the file, shared exports read-only', () => {
  const cfg = parseConfig({
    stateDir: 'state',
    limits: { maxHandles: 100 },
    exports: { pub: { path: '/srv/pub' } },
    listen: { tcp: {} },
    guests: [
      { name: 'web-1', secret: 's', exports: [{ name: 'home', path: 'guests/web-1' }, 'pub'] },
      { name: 'db.2', uid: 1000, exports: [{ name: 'data', path: '/srv/db', readOnly: true }], limits: { maxNodes: 16 } },
    ],
  }, FILE);
  assert.equal(cfg.file, FILE);
  assert.equal(cfg.stateDir, '/etc/xenfs/state');
  assert.equal(cfg.workers, defaults.workers);
  assert.deepEqual(cfg.listen, { unix: false, tcp: { host: '127.0.0.1', port: 0 } });
  const [web, db] = cfg.guests;
  assert.deepEqual(web?.exports, [
    { name: 'home', path: '/etc/xenfs/guests/web-1', readOnly: false, writes: 'passthrough' },
    { name: 'pub', path: '/srv/pub', readOnly: true, writes: 'passthrough' },
  ]);
  assert.equal(web?.secret, 's');
  assert.equal(web?.uid, undefined);
  assert.deepEqual(web?.limits, { ...defaults.limits, maxHandles: 100 });
  assert.deepEqual(db?.limits, { ...defaults.limits, maxHandles: 100, maxNodes: 16 });
  assert.equal(db?.uid, 1000);
  assert.equal(db?.exports[0]?.readOnly, true);
  assert.equal(parseConfig(base({ guests: [guest({ exports: [{ name: 'a', path: 'a', writes: 'dom0' }] })] }), FILE)
    .guests[0]?.exports[0]?.writes, 'dom0');
});

test('loadConfig: an unreadable file and invalid JSON name the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-config-'));
  try {
    const missing = path.join(dir, 'missing.json');
    assert.throws(() => loadConfig(missing), (err: unknown) =>
      err instanceof ConfigError && err.file === missing && err.key === '(file)' && err.message.includes(missing));
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{ "stateDir": "state", ');
    assert.throws(() => loadConfig(bad), (err: unknown) =>
      err instanceof ConfigError && err.file === bad && /not valid JSON/.test(err.message));
    const good = path.join(dir, 'good.json');
    fs.writeFileSync(good, JSON.stringify(base()));
    assert.equal(loadConfig(good).stateDir, path.join(dir, 'state'));
    const wrong = path.join(dir, 'wrong.json');
    fs.writeFileSync(wrong, JSON.stringify(base({ guests: [guest({ secret: '' })] })));
    assert.throws(() => loadConfig(wrong), (err: unknown) =>
      err instanceof ConfigError && err.message === `${wrong}: guests[0].secret: must be a non-empty string`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig reads YAML; an error names the file, the key and its line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-config-yaml-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'xenfs.yaml');
  const yaml = (maxHandles: number): string => [
    '# dom0',
    'stateDir: state',
    'guests:',
    '  - name: g1',
    '    secret: s',
    '    exports: [{ name: home, path: home }]',
    '    limits:',
    `      maxHandles: ${maxHandles}`,
    'services:',
    '  indexer: { enabled: false, config: { batchSize: 10 } }',
    '',
  ].join('\n');
  fs.writeFileSync(file, yaml(64));
  const cfg = loadConfig(file);
  assert.equal(cfg.guests[0]?.limits.maxHandles, 64);
  assert.equal(cfg.stateDir, path.join(dir, 'state'));
  assert.deepEqual(cfg.services[0]?.config, { batchSize: 10 });
  assert.equal(cfg.lines['services.indexer.config.batchSize'], 10);
  fs.writeFileSync(file, yaml(2));
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.line === 8 &&
    err.message === `${file}: guests[0].limits.maxHandles (line 8): must be an integer in 4..1048576`);
  fs.writeFileSync(file, `${yaml(64)}stateDir: again\n`);
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.key === 'stateDir' &&
    err.line === 11 && /given twice \(first on line 2\)/.test(err.message));
});

test('loadConfig: a multi-line JSON file gets line numbers too', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-config-json-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'xenfs.json');
  fs.writeFileSync(file, JSON.stringify(base({ workers: 100 }), null, 2));
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.key === 'workers' &&
    err.line === 15 && err.message.includes('workers (line 15)'));
});

test('the example config/xenfs.yaml parses: two guests, a shared export, the three services disabled', () => {
  const file = fileURLToPath(new URL('../../../config/xenfs.yaml', import.meta.url));
  const cfg = loadConfig(file);
  assert.equal(cfg.stateDir, '/var/lib/xenfs');
  assert.deepEqual(cfg.guests.map((g) => g.name), ['web-1', 'db-1']);
  const shared = cfg.guests.map((g) => g.exports.find((e) => e.name === 'tools'));
  assert.ok(shared.every((e) => e?.readOnly === true && e.path === '/srv/xenfs/shared/tools'));
  assert.deepEqual(cfg.redis, { mode: 'private', dir: '/var/lib/xenfs/redis' });
  assert.deepEqual(cfg.services.map((s) => [s.name, s.enabled]), [['indexer', false], ['scanner', false], ['backup', false]]);
  assert.deepEqual(cfg.events, defaults.events);
});

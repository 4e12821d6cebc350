// The example service of docs/plugins.md, run as the runtime would: its module checked by checkDefinition, its
// settings by its schema, then start, handle and health against a real context (real SQLite in a temp state
// dir, a real GuestReader) with ChangeEvents, including the same event twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import Database from 'better-sqlite3';
import { parseConfig } from '../../../../core/config/config.ts';
import { checkDefinition } from '../../../../core/plugins/check-definition.ts';
import { GuestReader } from '../../../../core/plugins/guest-reader.ts';
import { createServiceContext } from '../../../../core/plugins/service-context.ts';
import { validateServiceConfig } from '../../../../core/plugins/service-config.ts';
import type { ChangeEvent, EventKind, PolicyHooks, SnapshotHooks } from '../../../../core/index.ts';
import fileCount, { fileCounts } from '../../../../docs/examples/file-count/index.ts';
import type { FileCountSettings } from '../../../../docs/examples/file-count/index.ts';

const MODULE = fileURLToPath(new URL('../../../../docs/examples/file-count/index.ts', import.meta.url));
// The server's side of these hooks is not written yet, and file-count does not use them.
const policy: PolicyHooks = {
  deny: () => Promise.reject(new Error('unused')), allow: () => Promise.reject(new Error('unused')),
  denied: () => Promise.resolve([]),
};
const snapshots: SnapshotHooks = { quiesce: () => Promise.reject(new Error('unused')) };

let seq = 0;
function ev(guest: string, kind: EventKind, p: string, oldPath?: string): ChangeEvent {
  seq += 1;
  const dir = kind === 'dirCreated' || kind === 'dirDeleted';
  const e: ChangeEvent = {
    seq, guest, export: 'home', kind, path: p, dir, size: 0, mtime: 0, ino: seq, time: Date.now(), origin: 'guest',
  };
  return oldPath === undefined ? e : { ...e, oldPath };
}

test('file-count: loaded through checkDefinition and run against a real context', async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-file-count-'));
  t.after(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const loaded = await import(MODULE) as { default: unknown };
  const def = checkDefinition(loaded.default, MODULE);
  assert.equal(def, fileCount);
  assert.equal(def.name, 'file-count');

  const file = path.join(stateDir, 'xenfs.yaml');
  const config = parseConfig({
    stateDir,
    guests: ['web-1', 'db-1'].map((name) => ({ name, secret: 's', exports: [{ name: 'home', path: path.join(stateDir, name) }] })),
    services: { 'file-count': { module: MODULE, config: { countDirectories: true } } },
  }, file);
  const svc = config.services[0];
  assert.equal(svc?.module, MODULE);
  const settings = validateServiceConfig(def.configSchema, svc?.config, { file, key: 'services.file-count.config' });
  assert.deepEqual(settings, { countDirectories: true });

  const logLines: string[] = [];
  const sink = new Writable({ write(c: Buffer, _e, done) { logLines.push(c.toString()); done(); } });
  const handle = createServiceContext<FileCountSettings>({
    name: def.name, config: settings as unknown as FileCountSettings, stateDir, logger: pino({ base: null }, sink),
    reader: new GuestReader(config), policy, snapshots,
  });
  t.after(() => handle.close());
  const ctx = handle.context;
  await fileCount.start?.(ctx);
  assert.match(logLines.join(''), /"service":"file-count".*"msg":"file-count started"/);

  const run = async (e: ChangeEvent): Promise<unknown> => fileCount.handle?.(e, ctx);
  const events = [
    ev('web-1', 'dirCreated', 'docs🙂'),
    ev('web-1', 'created', 'docs🙂/a.txt'),
    ev('web-1', 'created', 'docs🙂/b.txt'),
    ev('web-1', 'created', 'docs🙂/sub/c.txt'),
    ev('web-1', 'created', 'top.txt'),
    ev('db-1', 'created', 'data.db'),
  ];
  for (const e of events) assert.deepEqual(await run(e), { status: 'done' });
  assert.deepEqual(fileCounts(ctx), { 'db-1': 1, 'web-1': 5 });
  // At-least-once delivery: the same events again change nothing.
  for (const e of events) await run(e);
  assert.deepEqual(fileCounts(ctx), { 'db-1': 1, 'web-1': 5 });

  // A directory rename moves what is under it; the event names only the directory (a name outside the BMP,
  // so SQLite's characters and JavaScript's UTF-16 units differ).
  assert.deepEqual(await run(ev('web-1', 'renamed', 'papers', 'docs🙂')), { status: 'done' });
  const paths = (ctx.db().prepare("SELECT path FROM entries WHERE guest = 'web-1' ORDER BY path").all() as Array<{ path: string }>)
    .map((r) => r.path);
  assert.deepEqual(paths, ['papers', 'papers/a.txt', 'papers/b.txt', 'papers/sub/c.txt', 'top.txt']);
  // Renaming a file onto an existing one replaces it, as rename(2) does.
  await run(ev('web-1', 'renamed', 'top.txt', 'papers/a.txt'));
  assert.deepEqual(fileCounts(ctx), { 'db-1': 1, 'web-1': 4 });
  await run(ev('web-1', 'deleted', 'top.txt'));
  await run(ev('web-1', 'deleted', 'top.txt'));
  assert.deepEqual(fileCounts(ctx), { 'db-1': 1, 'web-1': 3 });
  await run(ev('web-1', 'dirDeleted', 'papers'));
  assert.deepEqual(fileCounts(ctx), { 'db-1': 1 });
  assert.deepEqual(await run(ev('web-1', 'modified', 'x')), { status: 'skipped', reason: 'modified events do not change the count' });
  assert.deepEqual(await fileCount.health?.(ctx), { healthy: true, detail: '1 entries' });

  // Stopped: the signal is aborted, then the database is closed; what it wrote stays in state.db.
  handle.close();
  assert.ok(ctx.signal.aborted);
  const db = new Database(path.join(stateDir, 'services', 'file-count', 'state.db'), { readonly: true });
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT guest, path FROM entries').all(), [{ guest: 'db-1', path: 'data.db' }]);
});

test('file-count: without countDirectories, directories are skipped, not counted', async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-file-count-'));
  t.after(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const settings = validateServiceConfig(fileCount.configSchema, {}, { file: 'x.yaml', key: 'services.file-count.config' });
  assert.deepEqual(settings, { countDirectories: false });
  const config = parseConfig({ stateDir, guests: [{ name: 'g', secret: 's', exports: [{ name: 'home', path: stateDir }] }] }, 'x.yaml');
  const handle = createServiceContext<FileCountSettings>({
    name: 'file-count', config: settings as unknown as FileCountSettings, stateDir, logger: pino({ level: 'silent' }),
    reader: new GuestReader(config), policy, snapshots,
  });
  t.after(() => handle.close());
  await fileCount.start?.(handle.context);
  assert.equal((await fileCount.handle?.(ev('g', 'dirCreated', 'd'), handle.context) as { status: string }).status, 'skipped');
  await fileCount.handle?.(ev('g', 'created', 'd/f'), handle.context);
  assert.deepEqual(fileCounts(handle.context), { g: 1 });
  assert.throws(() => validateServiceConfig(fileCount.configSchema, { countDirs: true }, { file: 'x.yaml', key: 'services.file-count.config' }),
    /services\.file-count\.config\.countDirs: is not a known key/);
});

test('docs/plugins.md shows the example as it is in docs/examples/file-count/index.ts', () => {
  const doc = fs.readFileSync(fileURLToPath(new URL('../../../../docs/plugins.md', import.meta.url)), 'utf8');
  const block = /<!-- example: docs\/examples\/file-count\/index\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(doc)?.[1];
  assert.equal(block, fs.readFileSync(MODULE, 'utf8'));
});

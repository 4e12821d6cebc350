// `xenfs guest` argument checking: required arguments, where the secret may come from, and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenfsError } from '../../../core/errors.ts';
import { parseGuestArgs } from '../../../core/cli/guest-command.ts';

const isUsage = (pattern: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof XenfsError && err.code === 'XENFS_ERR_CONFIG', String(err));
  assert.match(err.message, pattern);
  assert.match(err.message, /usage: xenfs guest NAME --mount DIR/);
  return true;
};

test('defaults: the standard control socket, 10 s of waiting, caching as dom0 configures it, the front end the kernel suits', () => {
  const env: NodeJS.ProcessEnv = {};
  const a = parseGuestArgs(['vm1', '--mount', 'relative/dir'], env);
  assert.deepEqual(a, {
    domain: 'vm1', mount: path.resolve('relative/dir'), exportName: undefined, controlPath: '/var/lib/xenfs/control.sock',
    secret: undefined, waitMs: 10_000, cache: undefined, nameCacheMs: undefined, frontend: 'auto', passthrough: true,
    sandbox: null,
  });
});

test('--frontend picks one of auto, native and fuse-native; --no-passthrough asks the kernel for none', () => {
  for (const f of ['auto', 'native', 'fuse-native'] as const) {
    assert.equal(parseGuestArgs(['a', '--mount', '/m', '--frontend', f], {}).frontend, f);
  }
  for (const bad of ['libfuse', '', 'NATIVE']) {
    assert.throws(() => parseGuestArgs(['a', '--mount', '/m', '--frontend', bad], {}), isUsage(/--frontend/), bad);
  }
  assert.equal(parseGuestArgs(['a', '--mount', '/m', '--no-passthrough'], {}).passthrough, false);
});

test('the secret: first line of --secret-file, else $XENFS_SECRET, which is then dropped from the environment', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-guest-args-'));
  try {
    const file = path.join(dir, 'secret');
    fs.writeFileSync(file, 'from the file\nsecond line\n');
    const env: NodeJS.ProcessEnv = { XENFS_SECRET: 'from env' };
    assert.equal(parseGuestArgs(['vm1', '--mount', '/m', '--secret-file', file], env).secret, 'from the file');
    assert.equal(env.XENFS_SECRET, undefined);
    const env2: NodeJS.ProcessEnv = { XENFS_SECRET: 'from env' };
    assert.equal(parseGuestArgs(['vm1', '--mount', '/m'], env2).secret, 'from env');
    assert.equal(env2.XENFS_SECRET, undefined);
    assert.throws(() => parseGuestArgs(['vm1', '--mount', '/m', '--secret-file', path.join(dir, 'none')], {}),
      isUsage(/cannot be read/));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('refusals: no name, two names, no mount, a bad wait, a bad cache mode, any unknown flag (--secret included)', () => {
  assert.throws(() => parseGuestArgs(['--mount', '/m'], {}), isUsage(/exactly one guest NAME/));
  assert.throws(() => parseGuestArgs(['a', 'b', '--mount', '/m'], {}), isUsage(/exactly one guest NAME/));
  assert.throws(() => parseGuestArgs(['a'], {}), isUsage(/--mount DIR is required/));
  for (const w of ['-1', '1.5', 'soon', '']) {
    assert.throws(() => parseGuestArgs(['a', '--mount', '/m', '--wait-ms', w], {}), isUsage(/--wait-ms/));
  }
  assert.equal(parseGuestArgs(['a', '--mount', '/m', '--wait-ms', '0'], {}).waitMs, 0);
  assert.throws(() => parseGuestArgs(['a', '--mount', '/m', '--cache', 'always'], {}), isUsage(/--cache/));
  for (const bad of ['-1', '1.5', '60001', 'soon', '']) {
    assert.throws(() => parseGuestArgs(['a', '--mount', '/m', '--name-cache-ms', bad], {}), isUsage(/--name-cache-ms/), bad);
  }
  assert.equal(parseGuestArgs(['a', '--mount', '/m', '--name-cache-ms', '100'], {}).nameCacheMs, 100);
  assert.throws(() => parseGuestArgs(['a', '--mount', '/m', '--secret', 'x'], {}), isUsage(/--secret/));
});

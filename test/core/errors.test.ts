import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  ConfigError, DisconnectedError, ERROR_CODES, ErrnoError, LimitError, ProcessError, ProtocolError, XenfsError, errnoName,
  errnoNumber,
} from '../../core/errors.ts';

// One instance of every class, so a class added without a registered code fails here.
const samples: XenfsError[] = [
  new XenfsError('XENFS_ERR_INTERNAL', 'broken invariant'),
  new ErrnoError(2, 'WALK', 'a/b', { syscall: 'stat' }),
  new ProtocolError('bad slot', { domain: 3 }),
  new DisconnectedError(),
  new LimitError('maxInFlight', 'too many requests'),
  new ConfigError('xenfs.json', 'server.maxGuests', 'must be a positive integer'),
  new ProcessError('/usr/bin/redis-server', 'exited before answering PING', { logTail: 'FATAL CONFIG FILE ERROR' }),
];

test('every error class carries a registered code', () => {
  for (const err of samples) {
    assert.ok(err instanceof XenfsError);
    assert.ok(err instanceof Error);
    assert.ok(Object.hasOwn(ERROR_CODES, err.code), `${err.name} code ${err.code} is not in ERROR_CODES`);
    assert.match(err.code, /^XENFS_ERR_[A-Z_]+$/);
  }
});

test('every registered code is documented in docs/errors.md, and nothing else is', async () => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ERROR_CODES)) assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs`);
  const documented = new Set(doc.match(/XENFS_ERR_[A-Z_]+/g) ?? []);
  for (const code of documented) assert.ok(Object.hasOwn(ERROR_CODES, code), `${code} documented but unregistered`);
});

test('ErrnoError formats like Node and keeps its fields', () => {
  const err = new ErrnoError(2, 'WALK', 'a/b', { syscall: 'stat' });
  assert.equal(err.message, "ENOENT: no such file or directory, stat 'a/b'");
  assert.equal(err.code, 'XENFS_ERR_ERRNO');
  assert.equal(err.errno, 2);
  assert.equal(err.errnoName, 'ENOENT');
  assert.equal(err.op, 'WALK');
  assert.equal(err.path, 'a/b');
  assert.equal(err.name, 'ErrnoError');
  const rename = new ErrnoError(18, 'RENAME', 'x', { dest: 'y' });
  assert.equal(rename.message, "EXDEV: cross-device link not permitted, RENAME 'x' -> 'y'");
});

test('errno names map both ways and unknown numbers do not throw', () => {
  assert.equal(errnoName(errnoNumber('ENOENT') ?? 0), 'ENOENT');
  assert.equal(errnoName(errnoNumber('EAGAIN') ?? 0), 'EAGAIN');
  assert.equal(errnoName(errnoNumber('EOPNOTSUPP') ?? 0), 'EOPNOTSUPP');
  assert.equal(errnoName(4000), 'EUNKNOWN');
  assert.equal(new ErrnoError(4000, 'READ').message, 'EUNKNOWN: error 4000, READ');
  assert.equal(errnoNumber('ENOTANERRNO'), undefined);
});

test('specific fields survive on subclasses', () => {
  assert.equal(new ProtocolError('x', { domain: 'g1' }).domain, 'g1');
  assert.equal(new LimitError('maxInFlight', 'x').limit, 'maxInFlight');
  const cfg = new ConfigError('a.json', 'k', 'bad');
  assert.equal(cfg.file, 'a.json');
  assert.equal(cfg.key, 'k');
  const proc = new ProcessError('/bin/x', 'would not start', { logTail: 'line 1\nline 2' });
  assert.equal(proc.program, '/bin/x');
  assert.equal(proc.logTail, 'line 1\nline 2');
  assert.match(proc.message, /^would not start\n.*\nline 1\nline 2$/);
  assert.equal(new ProcessError('/bin/x', 'no log').message, 'no log');
  const cause = new Error('socket reset');
  assert.equal(new DisconnectedError('gone', { cause }).cause, cause);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ProcessError } from '../../../core/errors.ts';
import { PrivateRedis, type RedisExit } from '../../../core/events/private-redis.ts';
import { processExists, recordingLogger, tempDir, waitUntil } from '../../helpers/redis.ts';

/** A PrivateRedis on a fresh directory, stopped and removed after the test. */
function privateRedis(t: { after(fn: () => unknown): void }, opts: Partial<ConstructorParameters<typeof PrivateRedis>[0]> = {}): PrivateRedis {
  const dir = opts.dir ?? tempDir();
  const redis = new PrivateRedis({ dir, logger: recordingLogger(), ...opts });
  t.after(async () => {
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return redis;
}

async function withClient<T>(redis: PrivateRedis, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({ path: redis.socketPath, lazyConnect: true, retryStrategy: () => null });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

test('start answers PING on a 0700 socket, with no TCP port; stop leaves no process and is idempotent', async (t) => {
  const redis = privateRedis(t);
  await redis.start();
  const pid = redis.pid;
  assert.ok(pid !== null && processExists(pid));
  assert.equal(fs.statSync(redis.socketPath).mode & 0o777, 0o700);
  assert.equal(Number(fs.readFileSync(redis.pidPath, 'utf8')), pid);
  await withClient(redis, async (c) => {
    assert.equal(await c.ping(), 'PONG');
    assert.deepEqual(await c.config('GET', 'port'), ['port', '0']);
    assert.deepEqual(await c.config('GET', 'appendonly'), ['appendonly', 'yes']);
    assert.deepEqual(await c.config('GET', 'appendfsync'), ['appendfsync', 'everysec']);
    assert.deepEqual(await c.config('GET', 'save'), ['save', '']);
  });
  const exits: RedisExit[] = [];
  redis.on('exit', (e) => exits.push(e));
  await Promise.all([redis.stop(), redis.stop()]);
  await redis.stop();
  assert.equal(processExists(pid), false, `redis-server ${pid} still exists after stop()`);
  assert.equal(redis.running, false);
  assert.equal(fs.existsSync(redis.socketPath), false);
  assert.deepEqual(exits, [{ code: 0, signal: null, expected: true }]);
});

test('data survives a restart through the append-only file', async (t) => {
  const redis = privateRedis(t);
  await redis.start();
  await withClient(redis, (c) => c.set('survivor', 'still here'));
  await redis.stop();
  assert.ok(fs.existsSync(path.join(redis.dir, 'appendonlydir', 'appendonly.aof.manifest')));
  await redis.start();
  assert.equal(await withClient(redis, (c) => c.get('survivor')), 'still here');
});

test('a redis left running by an earlier owner of the directory is stopped and replaced', async (t) => {
  const dir = tempDir();
  // The earlier owner: started, then dropped without stop(), as if its process had been SIGKILLed.
  const orphan = new PrivateRedis({ dir, logger: recordingLogger() });
  await orphan.start();
  const stalePid = orphan.pid as number;
  t.after(() => orphan.kill());
  await withClient(orphan, (c) => c.set('k', 'from before'));
  const logger = recordingLogger();
  const redis = privateRedis(t, { dir, logger });
  await redis.start();
  assert.notEqual(redis.pid, stalePid);
  await waitUntil(() => !processExists(stalePid), 2000, 'the stale redis-server to be gone');
  assert.ok(logger.lines.some((l) => l.msg.includes('left running') && l.fields.pid === stalePid));
  // Stopped with SIGTERM, so it flushed: nothing written to the old one is lost.
  assert.equal(await withClient(redis, (c) => c.get('k')), 'from before');
});

test('a pid file naming a process that is not a redis-server is left alone', async (t) => {
  const redis = privateRedis(t);
  fs.mkdirSync(redis.dir, { recursive: true });
  // Our socket path is on its command line, but it is no redis-server (the PID was reused, say).
  const other = spawn('/bin/sh', ['-c', 'exec sleep 30', redis.socketPath], { stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  fs.writeFileSync(redis.pidPath, `${other.pid}\n`);
  await redis.start();
  assert.ok(processExists(other.pid as number));
  assert.equal(await withClient(redis, (c) => c.ping()), 'PONG');
});

test('start fails clearly when redis-server cannot run', async (t) => {
  const missing = privateRedis(t, { binary: '/nonexistent/redis-server' });
  await assert.rejects(missing.start(), (err: unknown) => {
    assert.ok(err instanceof ProcessError);
    assert.equal(err.code, 'XENFS_ERR_PROCESS');
    assert.match(err.message, /cannot run \/nonexistent\/redis-server: .*ENOENT/);
    return true;
  });
  assert.equal(missing.running, false);

  // A program that reads our config and dies: its complaint (on stderr) is in the error.
  const wrong = privateRedis(t, { binary: '/bin/sh' });
  await assert.rejects(wrong.start(), (err: unknown) => {
    assert.ok(err instanceof ProcessError);
    assert.match(err.message, /exited \(code \d+\) before answering PING/);
    assert.match(err.logTail, /daemonize/);
    assert.match(err.message, /end of its log[\s\S]*daemonize/);
    return true;
  });
});

test('start gives up after its timeout and kills what it started', async (t) => {
  const dir = tempDir();
  const script = path.join(dir, 'silent-redis');
  fs.writeFileSync(script, '#!/bin/sh\necho "pretending to start"\nexec sleep 30\n', { mode: 0o755 });
  const redis = privateRedis(t, { dir, binary: script, startTimeoutMs: 300 });
  const started = redis.start();
  await waitUntil(() => redis.pid !== null, 1000, 'the child to be spawned');
  const pid = redis.pid as number;
  await assert.rejects(started, (err: unknown) => {
    assert.ok(err instanceof ProcessError);
    assert.match(err.message, /did not answer PING .* within 300 ms/);
    assert.match(err.logTail, /pretending to start/);
    return true;
  });
  assert.equal(processExists(pid), false);
});

test('a socket path too long for a UNIX socket is refused before anything runs', async (t) => {
  const parent = tempDir();
  t.after(() => fs.rmSync(parent, { recursive: true, force: true }));
  const redis = privateRedis(t, { dir: path.join(parent, 'x'.repeat(120)) });
  await assert.rejects(redis.start(), /longer than 107 bytes/);
  assert.equal(fs.existsSync(redis.dir), false);
});

test('an exit nobody asked for is emitted and logged; kill() is expected', async (t) => {
  const logger = recordingLogger();
  const redis = privateRedis(t, { logger });
  await redis.start();
  const exits: RedisExit[] = [];
  redis.on('exit', (e) => exits.push(e));
  process.kill(redis.pid as number, 'SIGKILL');
  await waitUntil(() => exits.length === 1, 2000, 'the exit event');
  assert.deepEqual(exits[0], { code: null, signal: 'SIGKILL', expected: false });
  assert.ok(logger.lines.some((l) => l.level === 'error' && l.msg === 'private redis exited unexpectedly'));
  assert.equal(redis.running, false);

  await redis.start();
  await redis.kill();
  assert.deepEqual(exits[1], { code: null, signal: 'SIGKILL', expected: true });
  await redis.start();
  assert.equal(await withClient(redis, (c) => c.ping()), 'PONG');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { Cluster, Redis } from 'ioredis';
import {
  EndingRedis, clusterOptions, createRedisClient, describeTarget, isConnectionError, queuePrefix, redisOptions,
} from '../../../core/events/redis-options.ts';
import { ServiceQueues } from '../../../core/events/service-queue.ts';
import { ServiceWorker } from '../../../core/events/service-worker.ts';
import { deferrer, makeEvents, processExists, recordingLogger, startTestRedis, tempDir, waitUntil } from '../../helpers/redis.ts';

test('workers wait out outages, producers fail fast', () => {
  const socket = { path: '/run/x.sock' };
  const w = redisOptions(socket, 'worker', 'w');
  assert.equal(w.maxRetriesPerRequest, null);
  assert.equal(w.enableOfflineQueue, true);
  assert.equal(w.path, '/run/x.sock');
  const p = redisOptions(socket, 'producer', 'p');
  assert.equal(p.maxRetriesPerRequest, 1);
  assert.equal(p.enableOfflineQueue, false);
  assert.equal(p.connectionName, 'p');
  const tcp = redisOptions({ host: 'redis.lan', port: 6380, password: 'pw', tls: true }, 'worker', 'w');
  assert.deepEqual([tcp.host, tcp.port, tcp.password, tcp.tls], ['redis.lan', 6380, 'pw', {}]);
  assert.equal(redisOptions({ host: 'h', port: 1 }, 'worker', 'w').tls, undefined);
  const c = clusterOptions({ cluster: [{ host: 'a', port: 1 }], password: 'pw' }, 'worker', 'w');
  assert.equal(c.redisOptions?.maxRetriesPerRequest, null);
  assert.equal(c.redisOptions?.password, 'pw');
  assert.equal(clusterOptions({ cluster: [{ host: 'a', port: 1 }] }, 'producer', 'p').enableOfflineQueue, false);
});

test('a cluster gets a hash-tag prefix; descriptions hide passwords', () => {
  assert.equal(queuePrefix({ path: '/x' }), 'xenfs');
  assert.equal(queuePrefix({ host: 'h', port: 1 }), 'xenfs');
  assert.equal(queuePrefix({ cluster: [{ host: 'h', port: 1 }] }), '{xenfs}');
  assert.equal(describeTarget({ host: 'h', port: 1, password: 'secret', tls: true }), 'h:1 (tls)');
  assert.equal(describeTarget({ cluster: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }], password: 'secret' }), 'cluster(a:1,b:2)');
  assert.ok(createRedisClient({ cluster: [{ host: '127.0.0.1', port: 1 }] }, 'worker', 'w') instanceof Cluster);
  const plain = createRedisClient({ path: '/x' }, 'worker', 'w');
  assert.ok(plain instanceof EndingRedis);
  assert.equal(plain.status, 'wait');
});

test('connection errors are told apart from others', () => {
  assert.ok(isConnectionError(Object.assign(new Error('connect ENOENT /x.sock'), { code: 'ENOENT' })));
  assert.ok(isConnectionError(new Error('Connection is closed.')));
  assert.ok(isConnectionError(new Error("Stream isn't writeable and enableOfflineQueue options is false")));
  assert.ok(!isConnectionError(new Error('could not renew lock for job 1-2')));
  assert.ok(!isConnectionError(new Error('ERR Error running script')));
});

test('disconnecting a connection that waits to reconnect ends it and fails what it queued', async (t) => {
  const defer = deferrer(t);
  const r = await startTestRedis();
  defer(() => r.close());
  const client = new EndingRedis({ ...redisOptions(r.target, 'worker', 'ending') });
  client.on('error', () => {});
  defer(() => client.disconnect());
  await client.connect();
  await r.redis.stop();
  await waitUntil(() => client.status === 'reconnecting', 3000, 'the client to wait to reconnect');
  const queued = client.get('k');
  const ended = new Promise((resolve) => client.once('end', resolve));
  client.disconnect();
  await ended;
  await assert.rejects(queued, /Connection is closed/);
  // A plain ioredis client in the same state stays there.
  const plain = new Redis({ path: r.target.path, maxRetriesPerRequest: null, retryStrategy: () => 100, lazyConnect: true });
  plain.on('error', () => {});
  await waitUntil(() => plain.connect().then(() => false, () => plain.status === 'reconnecting'), 3000, 'reconnecting');
  plain.disconnect();
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(plain.status, 'reconnecting');
  // Duplicates (BullMQ's blocking connections) behave the same.
  const dup = client.duplicate({ connectionName: 'dup' });
  assert.ok(dup instanceof EndingRedis);
  dup.disconnect();
});

/** A free loopback port whose cluster bus port (+10000) is valid too. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = s.address() as net.AddressInfo;
        s.close(() => resolve(p));
      });
      s.on('error', reject);
    });
    if (port + 10000 < 65536) return port;
  }
}

test('on a Redis Cluster the hash-tag prefix keeps every queue in one slot: batches flow', async (t) => {
  const defer = deferrer(t);
  const dir = tempDir();
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  // A one-node cluster on loopback (a cluster needs TCP for its bus) owning all 16384 slots.
  const node = spawn('/usr/bin/redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `${dir}/nodes.conf`,
    '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', `${dir}/redis.log`,
    // Alone, a node knows no address of its own to put in CLUSTER SLOTS; clients need one.
    '--cluster-announce-ip', '127.0.0.1',
  ], { stdio: 'ignore' });
  defer(async () => {
    node.kill('SIGKILL');
    await waitUntil(() => !processExists(node.pid as number), 3000, 'the cluster node to exit');
  });
  const admin = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50 });
  admin.on('error', () => {});
  defer(() => admin.disconnect());
  await waitUntil(() => admin.connect().then(() => true, () => false), 5000, 'the cluster node to listen');
  await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  await waitUntil(async () => String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), 5000, 'cluster_state:ok');

  const target = { cluster: [{ host: '127.0.0.1', port }] };
  const q = new ServiceQueues({ target, logger: recordingLogger() });
  defer(() => q.close());
  await q.waitUntilReady();
  const handled: number[] = [];
  for (const service of ['indexer', 'scanner']) {
    const w = new ServiceWorker({
      target, service, logger: recordingLogger(),
      handler: async (events) => {
        handled.push(...events.map((e) => e.seq));
        return events.map(() => 'ok' as const);
      },
    });
    defer(() => w.close());
  }
  // One pipeline per service, sent together: on a cluster that only works when all keys share a slot.
  await q.addBatches([
    { service: 'indexer', events: makeEvents(1, 2) },
    { service: 'scanner', events: makeEvents(1, 2) },
    { service: 'indexer', events: makeEvents(3, 1) },
  ]);
  await waitUntil(() => handled.length === 5, 5000, 'all batches to be handled');
  assert.deepEqual(handled.sort(), [1, 1, 2, 2, 3]);
  const keys = await admin.keys('*');
  assert.ok(keys.length > 0 && keys.every((k) => k.startsWith('{xenfs}:')), keys.join(' '));
});

// The publisher's cursor (publisher.ts): the last event seq handed to every service's queue, kept in the same
// Redis as the queues. Redis writes its AOF in order, so a Redis that lost the last batches lost the cursor's
// advance past them too, and the publisher sends them again.
import type { Cluster, Redis } from 'ioredis';
import type { CursorStore } from './publisher.ts';
import { createRedisClient, queuePrefix, type RedisTarget } from './redis-options.ts';

export class RedisCursor implements CursorStore {
  readonly key: string;
  readonly #client: Redis | Cluster;
  #closed = false;
  #epoch = 0;

  constructor(target: RedisTarget) {
    this.key = `${queuePrefix(target)}:events:published`;
    this.#client = createRedisClient(target, 'producer', 'xenfs-publisher');
    // Connection failures surface as failed get()/set() calls, which the publisher retries.
    this.#client.on('error', () => {});
    this.#client.on('ready', () => this.#epoch++);
    this.#client.connect().catch(() => {});
  }

  /** The cursor, 0 when Redis has none (a fresh Redis, or one that lost everything: the log is replayed). */
  async get(): Promise<number> {
    await this.#ready();
    const v = await this.#client.get(this.key);
    const n = v === null ? 0 : Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${this.key} holds ${JSON.stringify(v)}, not a seq`);
    return n;
  }

  // The first call comes right after construction: give the connection a moment rather than fail at once.
  async #ready(timeoutMs = 2000): Promise<void> {
    if (this.#client.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#client.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#client.once('ready', done);
    });
  }

  epoch(): number {
    return this.#epoch;
  }

  async set(seq: number): Promise<void> {
    await this.#client.set(this.key, String(seq));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.disconnect();
  }
}

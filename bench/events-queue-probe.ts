// The bench's own connection to a flow's Redis: Redis's memory use, and pausing and resuming one BullMQ queue
// (the backlog phase), through BullMQ's public Queue API as an operator would, leaving the queue's settings alone.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

export class QueueProbe {
  readonly #redis: Redis;
  readonly #queue: Queue;

  /** `socket`: the Redis UNIX socket; `name` and `prefix`: the queue's, as its producers and workers use them. */
  constructor(socket: string, name: string, prefix: string) {
    this.#redis = new Redis({ path: socket, maxRetriesPerRequest: null });
    // skipMetasUpdate: a Queue otherwise writes its own settings into the queue's meta hash — BullMQ's default
    // events-stream length (10 000) over the 1000 XenFS's ServiceQueues set — and the probe would change what it
    // measures.
    this.#queue = new Queue(name, { connection: this.#redis, prefix, skipMetasUpdate: true });
  }

  /** INFO memory's used_memory, bytes. */
  async usedMemory(): Promise<number> {
    const info = await this.#redis.info('memory');
    const m = /^used_memory:(\d+)/m.exec(info);
    if (!m) throw new Error('INFO memory has no used_memory');
    return Number(m[1]);
  }

  /** Workers stop taking jobs; jobs added meanwhile wait. */
  pause(): Promise<void> {
    return this.#queue.pause();
  }

  resume(): Promise<void> {
    return this.#queue.resume();
  }

  async close(): Promise<void> {
    await this.#queue.close();
    this.#redis.disconnect();
  }
}

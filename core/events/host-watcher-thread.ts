// The host watcher on a worker thread of its own. chokidar stats every change it is told of, and a guest's
// writes are changes in the export directories too: under a flood of guest writes that work took close to half
// of dom0's JavaScript thread, which also serves the publisher and the services. Here it has its own thread;
// what crosses is the events (a message per burst) and the server's events for the echo filter (a message per
// log read).
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ChangeEvent, NewEvent } from './change-event.ts';
import type { WatchedExport } from './host-watcher.ts';
import type { FromWatcher, ToWatcher, WatcherThreadData } from './host-watcher-worker.ts';
import type { Logger } from '../util/log.ts';

export interface HostWatcherThreadOptions {
  exports: WatchedExport[];
  /** An absolute directory whose contents are never reported (dom0's state directory, if inside an export). */
  ignoreUnder?: string;
  logger: Logger;
}

interface ThreadEvents {
  event: [NewEvent];
  watchError: [{ root: string; path: string; code: string; message: string }];
}

export class HostWatcherThread extends EventEmitter<ThreadEvents> {
  /** Resolves once every root is watched (or has failed to be, with a watchError). */
  readonly ready: Promise<void>;
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  #closing: Promise<void> | null = null;

  constructor(opts: HostWatcherThreadOptions) {
    super();
    const data: WatcherThreadData = { exports: opts.exports, ignoreUnder: opts.ignoreUnder ?? null };
    // The worker is TypeScript like the rest: it registers tsx's loader for itself (a worker thread does not
    // inherit the loader the main thread was started with) before importing its module.
    const entry = new URL('./host-watcher-worker.ts', import.meta.url).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry)});`;
    this.#worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), { workerData: data });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    let readyNow: () => void = () => {};
    this.ready = new Promise((resolve) => (readyNow = resolve));
    this.#worker.on('message', (m: FromWatcher) => {
      switch (m.type) {
        case 'ready': return readyNow();
        case 'events': for (const ev of m.events) this.emit('event', ev); return;
        case 'watchError': this.emit('watchError', m); return;
        case 'log': return opts.logger.log(m.level, m.msg, m.fields);
        case 'closed': return void this.#worker.terminate();
      }
    });
    this.#worker.on('error', (err) => {
      opts.logger.log('error', 'host watcher thread failed; changes made on dom0 are left to reconciliation', { error: err.message });
      readyNow();
    });
  }

  /** The server's own events, so that their echoes on disk are not reported again. */
  noteServerEvents(events: ChangeEvent[]): void {
    if (events.length === 0 || this.#closing) return;
    this.#worker.postMessage({ type: 'notes', events } satisfies ToWatcher);
  }

  /** Stops watching and ends the thread. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#worker.postMessage({ type: 'close' } satisfies ToWatcher);
      const timer = setTimeout(() => void this.#worker.terminate(), 5000);
      await this.#exited;
      clearTimeout(timer);
    })();
    return this.#closing;
  }
}

// The worker-thread side of HostWatcherThread (host-watcher-thread.ts): a HostWatcher whose events, errors and
// log lines go to the parent as messages, and which takes the server's events (for its echo filter) and the
// order to close from it. Nothing here is reachable except through that thread.
import { parentPort, workerData } from 'node:worker_threads';
import path from 'node:path';
import type { ChangeEvent, NewEvent } from './change-event.ts';
import { HostWatcher, type WatchedExport } from './host-watcher.ts';
import type { LogLevel } from '../util/log.ts';

export interface WatcherThreadData {
  exports: WatchedExport[];
  /** Absolute directory whose contents are never reported (dom0's state directory inside an export). */
  ignoreUnder: string | null;
}

export type ToWatcher = { type: 'notes'; events: ChangeEvent[] } | { type: 'close' };
export type FromWatcher =
  | { type: 'ready' }
  | { type: 'events'; events: NewEvent[] }
  | { type: 'watchError'; root: string; path: string; code: string; message: string }
  | { type: 'log'; level: LogLevel; msg: string; fields: Record<string, unknown> }
  | { type: 'closed' };

const port = parentPort;
if (port) {
  const data = workerData as WatcherThreadData;
  const post = (m: FromWatcher): void => port.postMessage(m);
  const under = data.ignoreUnder;
  const watcher = new HostWatcher({
    exports: data.exports,
    logger: { log: (level, msg, fields = {}) => post({ type: 'log', level, msg, fields }) },
    ...(under ? { ignore: (rel: string, root: string) => {
      const abs = path.join(root, rel);
      return abs === under || abs.startsWith(`${under}/`);
    } } : {}),
  });
  // Events of one flush leave together: one message per burst, not per name.
  let batch: NewEvent[] = [];
  watcher.on('event', (ev) => {
    if (batch.length === 0) setImmediate(() => {
      post({ type: 'events', events: batch });
      batch = [];
    });
    batch.push(ev);
  });
  watcher.on('watchError', (e) => post({ type: 'watchError', root: e.root, path: e.path, code: e.error.code, message: e.error.message }));
  void watcher.ready.then(() => post({ type: 'ready' }));
  port.on('message', (m: ToWatcher) => {
    if (m.type === 'notes') for (const ev of m.events) watcher.noteServerEvent(ev);
    else void watcher.close().then(() => post({ type: 'closed' }));
  });
}

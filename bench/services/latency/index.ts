// latency: the service bench:events measures (bench/events.ts). For every event it is handed it appends one
// record to `<stateDir>/services/latency/handled.bin`: four float64s in native byte order — the event's seq, its
// `time` (when dom0 logged it: the guest's close), when the batch reached this handler, both in ms since the
// epoch (read with sub-millisecond resolution, as bench/events-records.ts's wall() reads it), and its origin
// (the index of `event.origin` in ORIGINS: a guest's change, a host change, a reconciliation's). One write(2) per
// batch and no parsing, so measuring costs the flow it measures as little as possible. Every event is answered
// done; nothing is kept but the records (a bench, not an index: replays after a crash would appear twice, which
// the bench, running one clean dom0, does not meet).
import fs from 'node:fs';
import path from 'node:path';
import { defineService } from '../../../core/index.ts';
import type { EventOutcome, ServiceContext } from '../../../core/index.ts';

/** The records' file name inside the service's state directory. */
export const RECORDS_FILE = 'handled.bin';
/** float64s per record: seq, event time, handler start, origin. */
export const RECORD_FIELDS = 4;
/** The origin field's values, by index. */
export const ORIGINS = ['guest', 'host', 'reconcile'] as const;

const DONE: EventOutcome = { status: 'done' };
// The open records file of each running context (one per process in practice).
const outputs = new WeakMap<ServiceContext, number>();

export default defineService({
  name: 'latency',
  subscriptions: {},
  configSchema: { type: 'object', additionalProperties: false, properties: {} },
  start(ctx) {
    outputs.set(ctx, fs.openSync(path.join(ctx.stateDir, RECORDS_FILE), 'a', 0o600));
  },
  stop(ctx) {
    const fd = outputs.get(ctx);
    if (fd !== undefined) fs.closeSync(fd);
    outputs.delete(ctx);
  },
  handleBatch(events, ctx) {
    // Taken once, before any work: what is measured is the flow's delay, not this handler's.
    const start = performance.timeOrigin + performance.now();
    const rec = new Float64Array(events.length * RECORD_FIELDS);
    events.forEach((e, i) => {
      rec[i * RECORD_FIELDS] = e.seq;
      rec[i * RECORD_FIELDS + 1] = e.time;
      rec[i * RECORD_FIELDS + 2] = start;
      rec[i * RECORD_FIELDS + 3] = ORIGINS.indexOf(e.origin);
    });
    const fd = outputs.get(ctx);
    if (fd === undefined) throw new Error('latency: handed events before start()');
    fs.writeSync(fd, new Uint8Array(rec.buffer));
    return events.map(() => DONE);
  },
});

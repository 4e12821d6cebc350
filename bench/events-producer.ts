// bench:events' XenFS producer: a process of its own holding guest connections (the client library over the
// shared-memory ring) that write files as the parent commands (ipc-child.ts). One operation is open(file, 'r+'),
// a 1-byte write at offset 0 and close: dom0 logs exactly one `modified` event for it, at the close. The files
// (f0, f1, ... in each guest's export) are created before `ready`, so their `created` events are over before
// the parent measures anything; each file has at most one operation in flight.
// argv: <control socket> <secret> <guest,guest,...> <export> <files per guest>
// Commands: flood (every file written back to back), rate {perSec} (paced, open loop), stop (waits for the
// operations in flight; replies { ops, errors, firstError }).
import { Guest } from '../core/frontend/guest.ts';
import type { GuestFs } from '../core/frontend/guest-fs.ts';
import { ProducerRun, serveParent } from './ipc-child.ts';
import { wall } from './events-records.ts';

const [controlPath, secret, guestList, exportName, filesArg] = process.argv.slice(2);
if (!controlPath || !secret || !guestList || !exportName || !filesArg) {
  throw new Error('usage: events-producer <control socket> <secret> <guest,...> <export> <files per guest>');
}

interface Target {
  fs: GuestFs;
  file: string;
}

const ONE = Buffer.from('x');
const guests = await Promise.all(guestList.split(',').map((domain) => Guest.connect({ controlPath, domain, secret })));
// Interleaved by guest, so that paced operations taken in order spread over every connection.
const targets: Target[] = [];
for (let i = 0; i < Number(filesArg); i++) {
  for (const g of guests) targets.push({ fs: g.fs(exportName), file: `f${i}` });
}
await Promise.all(targets.map((t) => t.fs.writeFile(t.file, 'x')));

const run = new ProducerRun();

async function touch(t: Target): Promise<void> {
  try {
    const h = await t.fs.open(t.file, 'r+');
    try {
      await h.write(ONE, 0, 1, 0);
    } finally {
      await h.close();
    }
    run.ok();
  } catch (err) {
    run.failed(err);
  }
}

function flood(): Promise<unknown> {
  return Promise.all(targets.map(async (t) => {
    while (!run.stopping) await touch(t);
  }));
}

// Open loop: operations start on schedule whatever the earlier ones are doing (a free file permitting), so a slow
// moment shows up as latency rather than as a lower rate.
async function paced(perSec: number): Promise<void> {
  const free = [...targets];
  const inFlight = new Set<Promise<void>>();
  const t0 = wall();
  let started = 0;
  while (!run.stopping) {
    const due = Math.floor(((wall() - t0) * perSec) / 1000);
    while (started < due && free.length > 0) {
      const t = free.shift() as Target;
      started++;
      const p: Promise<void> = touch(t).then(() => {
        inFlight.delete(p);
        free.push(t);
      });
      inFlight.add(p);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
}

serveParent({
  flood: () => run.start(flood),
  rate: (c) => run.start(() => paced(Number(c.perSec))),
  stop: () => run.stop(),
}, { type: 'ready', targets: targets.length }, async () => {
  run.stopping = true;
  await Promise.allSettled(guests.map((g) => g.close()));
});

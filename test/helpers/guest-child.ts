// A guest domain in its own process, for tests that kill it: connects, then writes 128 KiB blocks to a file
// in a loop (with a handle held open) and reports progress over IPC until it is killed.
import { Guest } from '../../core/frontend/guest.ts';

const [controlPath, domain, secret, file] = process.argv.slice(2);
if (!controlPath || !domain || !secret || !file) throw new Error('usage: guest-child CONTROL DOMAIN SECRET FILE');

const guest = await Guest.connect({ controlPath, domain, secret, waitMs: 0 });
const fsys = guest.fs();
const handles = await Promise.all([1, 2, 3].map((i) => fsys.open(`${file}.${i}`, 'w')));
const fh = await fsys.open(file, 'w');
const block = Buffer.alloc(128 * 1024, 0x61);
let written = 0;
process.send?.({ type: 'ready', handles: handles.length + 1 });
// Several writes in flight at once, so a kill lands in the middle of some.
for (;;) {
  await Promise.all([0, 1, 2, 3].map((k) => fh.write(block, 0, block.length, ((written + k) % 64) * block.length)));
  written += 4;
  if (written % 64 === 0) process.send?.({ type: 'progress', written });
}

// A guest in a process of its own that takes a write lock on a whole file and holds it until it is killed, for
// tests of what dom0 does with the locks of a guest that dies.
import { LockType, Op, OpenFlag } from '../../core/protocol/opcodes.ts';
import { encodeLock } from '../../core/protocol/lock.ts';
import { RawGuest } from './raw-guest.ts';

const [controlPath, domain, secret, file] = process.argv.slice(2);
if (!controlPath || !domain || !secret || !file) throw new Error('usage: lock-child CONTROL DOMAIN SECRET FILE');

const guest = await RawGuest.connect(controlPath, domain, secret);
const fh = await guest.open(file, OpenFlag.O_RDWR);
const lock = await guest.call({ op: Op.SETLK, fh, arg64: 1, data: encodeLock({ type: LockType.WRLCK, pid: process.pid }) });
process.send?.({ type: 'locked', status: lock.status });
// Held until killed: the ring and the control channel stay open while the timer keeps the process alive.
setInterval(() => {}, 1 << 30);

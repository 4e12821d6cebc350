// A guest front end written by hand for tests of dom0's pushed invalidations: it is the guest. It connects its own
// ring to dom0 (a RawGuest), attaches the FUSE connection it inherits as fd 3 with `fuse-attach`, and serves that
// mount by forwarding each kernel request to dom0, with FUSE node ids that are dom0's own (the mounted export root
// swapped with node 1, as the native front end does). Every entry and attribute reply carries a long kernel timeout
// (3600 s), and a miss is cached as a negative entry as long, unless dom0 marks the attributes VOLATILE: what the
// kernel then shows after another guest's change can only be fresh if dom0's invalidation reached it.
//
// Serves LOOKUP, FORGET, BATCH_FORGET, GETATTR, MKDIR, UNLINK and RMDIR; anything else is ENOSYS (STATX among them,
// so the kernel falls back to GETATTR). It prints `ready` once attached, then one line per request as it takes it:
// `OPCODE nodeid [name]`. Requests whose opcode is listed in `hold` are not answered until a line `release` arrives
// on stdin, and those listed in `delay` only after so many milliseconds, so a test can keep the guest's kernel
// waiting inside a directory operation, holding the directory's lock. When the connection goes away (unmounted) it prints `gone` and keeps its session to dom0.
// Usage: node --import tsx fuse-forwarder.ts '{"controlPath":"…","domain":"b","secret":"s","root":2,"hold":["MKDIR"]}'
import fs from 'node:fs';
import readline from 'node:readline';
import { Op, ResponseFlag } from '../../core/protocol/opcodes.ts';
import { RspOff } from '../../core/protocol/layout.ts';
import { RawGuest, type RawReply, type RawRequest } from './raw-guest.ts';
import { fuseReply } from './fuse-reply.ts';

interface Options {
  controlPath: string;
  domain: string;
  secret: string;
  root: number;
  hold?: string[];
  /** Milliseconds to wait before serving requests of these opcodes. */
  delay?: Record<string, number>;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const FD = 3;
const ROOT_ID = 1n;
const TIMEOUT_S = 3600n;
const ENOENT = 2;
const ENOSYS = 38;
const Opcode = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, MKDIR: 9, UNLINK: 10, RMDIR: 11, INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42,
  STATX: 52,
} as const;
const names = new Map<number, string>(Object.entries(Opcode).map(([k, v]) => [v, k]));
const IN_HEADER = 40;
const ATTR_SIZE = 88;

const root = BigInt(opts.root);
// The swap is its own inverse: the same function maps FUSE ids to dom0's and back.
const swap = (id: bigint): bigint => (id === ROOT_ID ? root : id === root ? ROOT_ID : id);

const reply = (unique: bigint, error: number, body?: Buffer): void => fuseReply(FD, unique, error, body);

/** fuse_attr from dom0's attr record: the two layouts are the same 88 bytes (dom0's pad is FUSE's flags). */
function fuseAttr(r: RawReply): Buffer {
  const a = Buffer.from(r.slot.subarray(RspOff.ATTR, RspOff.ATTR + ATTR_SIZE));
  a.writeUInt32LE(0, 84);
  return a;
}

const attrTimeout = (r: RawReply): bigint => ((r.slot.readUInt32LE(RspOff.FLAGS) & ResponseFlag.VOLATILE) !== 0 ? 0n : TIMEOUT_S);

/** fuse_entry_out for a dom0 entry reply; a miss (ENOENT) becomes a negative entry cached as long. */
function entryOut(r: RawReply): Buffer {
  const e = Buffer.alloc(40);
  if (r.status === 0) {
    e.writeBigUInt64LE(swap(r.slot.readBigUInt64LE(RspOff.NODE)), 0);
    e.writeBigUInt64LE(r.slot.readBigUInt64LE(RspOff.GENERATION), 8);
    e.writeBigUInt64LE(attrTimeout(r), 24);
  }
  e.writeBigUInt64LE(TIMEOUT_S, 16);
  return Buffer.concat([e, r.status === 0 ? fuseAttr(r) : Buffer.alloc(ATTR_SIZE)]);
}

const cString = (b: Buffer, at: number): string => {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end < 0 ? b.length : end);
};

const held: Buffer[] = [];

async function serve(req: Buffer): Promise<void> {
  const opcode = req.readUInt32LE(4);
  const unique = req.readBigUInt64LE(8);
  const nodeid = req.readBigUInt64LE(16);
  const node = swap(nodeid);
  const call = (r: RawRequest): Promise<RawReply> => guest.call(r);
  switch (opcode) {
    case Opcode.LOOKUP: {
      const r = await call({ op: Op.LOOKUP, node, name1: cString(req, IN_HEADER) });
      if (r.status === 0 || r.status === -ENOENT) reply(unique, 0, entryOut(r));
      else reply(unique, -r.status);
      return;
    }
    case Opcode.GETATTR: {
      const r = await call({ op: Op.GETATTR, node });
      if (r.status !== 0) return reply(unique, -r.status);
      const out = Buffer.alloc(16);
      out.writeBigUInt64LE(attrTimeout(r), 0);
      return reply(unique, 0, Buffer.concat([out, fuseAttr(r)]));
    }
    case Opcode.MKDIR: {
      const r = await call({ op: Op.MKDIR, node, arg32a: req.readUInt32LE(IN_HEADER), name1: cString(req, IN_HEADER + 8) });
      return r.status === 0 ? reply(unique, 0, entryOut(r)) : reply(unique, -r.status);
    }
    case Opcode.UNLINK:
    case Opcode.RMDIR: {
      const op = opcode === Opcode.UNLINK ? Op.UNLINK : Op.RMDIR;
      const r = await call({ op, node, name1: cString(req, IN_HEADER) });
      return reply(unique, -r.status);
    }
    case Opcode.FORGET:
      await call({ op: Op.FORGET, node, arg64: req.readBigUInt64LE(IN_HEADER) });
      return;
    case Opcode.BATCH_FORGET: {
      const count = req.readUInt32LE(IN_HEADER);
      for (let i = 0; i < count; i++) {
        const at = IN_HEADER + 8 + i * 16;
        await call({ op: Op.FORGET, node: swap(req.readBigUInt64LE(at)), arg64: req.readBigUInt64LE(at + 8) });
      }
      return;
    }
    case Opcode.INTERRUPT:
      return;
    case Opcode.DESTROY:
      return reply(unique, 0);
    default:
      return reply(unique, ENOSYS);
  }
}

function take(req: Buffer): void {
  const opcode = req.readUInt32LE(4);
  const name = names.get(opcode) ?? `op${opcode}`;
  const withName = opcode === Opcode.LOOKUP || opcode === Opcode.UNLINK || opcode === Opcode.RMDIR;
  const arg = withName ? ` ${cString(req, IN_HEADER)}` : opcode === Opcode.MKDIR ? ` ${cString(req, IN_HEADER + 8)}` : '';
  fs.writeSync(1, `${name} ${swap(req.readBigUInt64LE(16))}${arg}\n`);
  if (opts.hold?.includes(name)) {
    held.push(req);
    return;
  }
  const delay = opts.delay?.[name];
  if (delay !== undefined) setTimeout(() => start(req), delay);
  else start(req);
}

function start(req: Buffer): void {
  serve(req).catch((err: unknown) => fs.writeSync(2, `fuse-forwarder: ${String(err)}\n`));
}

// One read always outstanding, on the thread pool: the ring's replies arrive on this event loop meanwhile, and
// several kernel requests may be in flight at once (as two processes in the guest would have them).
const buf = Buffer.alloc((1 << 20) + 4096);
function readNext(): void {
  fs.read(FD, buf, 0, buf.length, null, (err, n) => {
    if (err) {
      fs.writeSync(1, 'gone\n');
      return;
    }
    if (n >= IN_HEADER) take(Buffer.from(buf.subarray(0, n)));
    readNext();
  });
}

const guest = await RawGuest.connect(opts.controlPath, opts.domain, opts.secret);
const attached = await guest.fuseAttach([FD], opts.root);
if (!attached.ok) {
  fs.writeSync(1, `attach-failed ${attached.code}\n`);
  process.exit(2);
}
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'release') return;
  for (const req of held.splice(0)) start(req);
});
fs.writeSync(1, 'ready\n');
readNext();

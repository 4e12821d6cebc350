// bench:ring — the same protocol and the same dom0 server carried over the shared-memory ring, a UNIX-domain
// socket and TCP on 127.0.0.1, measured in one run: getattr round trips per second at queue depth 1 and 32,
// 128 KiB reads of cached file data, and CPU seconds (dom0 + guest) per 100k operations.
// Usage: npm run bench:ring [-- --json] [--seconds S] [--rounds R]
import fs from 'node:fs';
import path from 'node:path';
import { Guest } from '../core/frontend/guest.ts';
import type { Transport } from '../core/frontend/transport.ts';
import { encodeRequest, type RequestSpec } from '../core/protocol/encode.ts';
import { decodeEntry, decodeResponse } from '../core/protocol/decode.ts';
import { Op } from '../core/protocol/opcodes.ts';
import type { TransportKind } from '../core/protocol/control.ts';
import { Dom0 } from '../test/helpers/dom0.ts';
import { benchArgs } from './args.ts';

const { json, num: opt, list } = benchArgs();
const SECONDS = opt('--seconds', 2);
const ROUNDS = opt('--rounds', 3);
const FILE_MB = 64;
const READ_SIZE = 128 * 1024;
const READ_DEPTH = 8;
const TRANSPORTS = list('--transports', ['ring', 'unix', 'tcp']) as TransportKind[];
if (!TRANSPORTS.every((t) => ['ring', 'unix', 'tcp'].includes(t))) throw new Error('--transports: ring,unix,tcp');

interface Sample {
  ops: number;
  seconds: number;
  cpu: number;
}

interface Row {
  transport: TransportKind;
  depth: number;
  op: 'getattr' | 'read128k';
  ops_per_s?: number;
  mb_per_s?: number;
  cpu_s_per_100k: number;
}

async function call(t: Transport, spec: RequestSpec): Promise<{ slot: Buffer; data: Buffer | null }> {
  const e = encodeRequest(spec);
  const r = await t.call({ slot: e.slot, payload: e.payload, outLen: e.outLen });
  const h = decodeResponse(r.slot);
  if (h.status !== 0) throw new Error(`op ${spec.op} failed with ${h.status}`);
  return r;
}

/** Runs `depth` loops of `op` for `duration` s; counts completed operations and the CPU both processes spent. */
async function measure(dom0: Dom0, depth: number, op: () => Promise<unknown>, duration: number): Promise<Sample> {
  let stop = false;
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const srv0 = dom0.cpuSeconds();
  const t0 = process.hrtime.bigint();
  const loops = Array.from({ length: depth }, async () => {
    while (!stop) {
      await op();
      ops++;
    }
  });
  await new Promise((r) => setTimeout(r, duration * 1000));
  stop = true;
  await Promise.all(loops);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  return { ops, seconds, cpu: (c.user + c.system) / 1e6 + (dom0.cpuSeconds() - srv0) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

function printTable(rows: Row[]): void {
  console.log('transport  op        depth     ops/s      MB/s   CPU s/100k');
  for (const r of rows) {
    console.log(
      `${r.transport.padEnd(10)} ${r.op.padEnd(9)} ${String(r.depth).padStart(5)} ` +
        `${String(r.ops_per_s ?? '').padStart(9)} ${String(r.mb_per_s ?? '').padStart(9)} ${r.cpu_s_per_100k.toFixed(3).padStart(12)}`,
    );
  }
  const find = (t: TransportKind, depth: number): number =>
    rows.find((r) => r.transport === t && r.op === 'getattr' && r.depth === depth)?.ops_per_s ?? NaN;
  for (const depth of [1, 32]) {
    const ring = find('ring', depth);
    console.log(
      `getattr depth ${depth}: ring/tcp ${(ring / find('tcp', depth)).toFixed(2)}x, ring/unix ${(ring / find('unix', depth)).toFixed(2)}x`,
    );
  }
}

async function main(): Promise<void> {
  const dom0 = await Dom0.start({
    config: {
      listen: { unix: true, tcp: { host: '127.0.0.1', port: 0 } },
      // One domain per transport: a domain has one connection at a time, and a new one replaces the old.
      guests: TRANSPORTS.map((t) => ({ name: `bench-${t}`, secret: 'bench-secret', exports: [{ name: 'data', path: 'export' }] })),
    },
  });
  const samples = new Map<string, Sample[]>();
  const add = (key: string, s: Sample): void => {
    samples.set(key, [...(samples.get(key) ?? []), s]);
  };
  const rows: Row[] = [];
  try {
    const exportDir = path.join(dom0.dir, 'export');
    fs.mkdirSync(exportDir, { recursive: true });
    const file = path.join(exportDir, 'data.bin');
    fs.writeFileSync(file, Buffer.alloc(FILE_MB << 20, 0x5a));
    fs.readFileSync(file); // the reads measure cached file data
    const guests = new Map<TransportKind, { guest: Guest; node: number | bigint; fh: number | bigint }>();
    for (const kind of TRANSPORTS) {
      const guest = await Guest.connect({
        controlPath: dom0.controlPath,
        domain: `bench-${kind}`,
        secret: 'bench-secret',
        transport: kind,
      });
      const t = guest.transport;
      const node = decodeEntry((await call(t, { op: Op.WALK, node: 1, name1: 'data.bin' })).slot).node;
      const fh = decodeResponse((await call(t, { op: Op.OPEN, node, arg32a: fs.constants.O_RDONLY })).slot).fh;
      guests.set(kind, { guest, node, fh });
    }
    // Round 0 is a warm-up (JIT, page cache, dom0's adaptive polling) and is not counted. Transports take turns
    // round by round, so a noisy neighbour on this shared machine hurts them all alike.
    for (let round = 0; round <= ROUNDS; round++) {
      for (const [kind, g] of guests) {
        const t = g.guest.transport;
        const seconds = round === 0 ? Math.min(SECONDS, 0.5) : SECONDS;
        const keep = (key: string, s: Sample): void => {
          if (round > 0) add(key, s);
        };
        for (const depth of [1, 32]) {
          keep(`${kind}:getattr:${depth}`, await measure(dom0, depth, () => call(t, { op: Op.GETATTR, node: g.node }), seconds));
        }
        let block = 0;
        const blocks = (FILE_MB << 20) / READ_SIZE;
        const read = (): Promise<unknown> =>
          call(t, { op: Op.READ, fh: g.fh, offset: (block++ % blocks) * READ_SIZE, len: READ_SIZE });
        keep(`${kind}:read128k:${READ_DEPTH}`, await measure(dom0, READ_DEPTH, read, seconds));
      }
    }
    for (const g of guests.values()) await g.guest.close();
    for (const kind of TRANSPORTS) {
      for (const depth of [1, 32]) {
        const s = samples.get(`${kind}:getattr:${depth}`) ?? [];
        rows.push({
          transport: kind,
          depth,
          op: 'getattr',
          ops_per_s: Math.round(median(s.map((x) => x.ops / x.seconds))),
          cpu_s_per_100k: Number(median(s.map((x) => (x.cpu / x.ops) * 1e5)).toFixed(3)),
        });
      }
    }
    for (const kind of TRANSPORTS) {
      const s = samples.get(`${kind}:read128k:${READ_DEPTH}`) ?? [];
      rows.push({
        transport: kind,
        depth: READ_DEPTH,
        op: 'read128k',
        mb_per_s: Math.round(median(s.map((x) => (x.ops * READ_SIZE) / x.seconds / 1e6))),
        cpu_s_per_100k: Number(median(s.map((x) => (x.cpu / x.ops) * 1e5)).toFixed(3)),
      });
    }
  } finally {
    await dom0.cleanup();
  }
  printTable(rows);
  if (json) console.log(JSON.stringify({ bench: 'ring', seconds: SECONDS, rounds: ROUNDS, results: rows }));
}

await main();

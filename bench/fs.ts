// bench:fs — the same fio jobs and metadata loop against a local directory, bindfs --multithreaded, sshfs over
// loopback, a bare fuse-native passthrough (XenFS's portable front end with no ring behind it) and XenFS guest mounts
// (the fuse-native front end, and the native one with kernel passthrough), in one run; then the memory test (4 mounts
// of each kind read one 1 GiB file) and the coherency test (a change through one of those mounts, seen through another).
// Usage: npm run bench:fs [-- --json] [--passes N] [--size-mib N] [--meta N] [--mem-mounts N]
//        [--coherency-rounds N] [--coherency-timeout-ms N]
//        [--peers local,bindfs,sshfs,fuse-native,xenfs,xenfs-passthrough[,xenfs-names,xenfs-auto]]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchArgs } from './args.ts';
import { BindfsPeer, FuseNativePeer, LocalPeer, SshfsPeer, XenfsPeer, type Peer } from './fs-peers.ts';
import { GiB, coherency, median, memoryCopies, meta, randread, seqread, seqwrite, type FioOptions } from './fs-jobs.ts';
import { coherencyP99, copiesKey, printResults, type Results, type Row } from './fs-report.ts';

const { json, num, list } = benchArgs();
const PASSES = num('--passes', 3);
const SIZE_MIB = num('--size-mib', 1024);
const META = num('--meta', 10_000);
const MEM_MOUNTS = num('--mem-mounts', 4);
const COHERENCY_ROUNDS = num('--coherency-rounds', 20);
// sshfs keeps attributes for 20 s by default: rounds that long would dominate the run, so a change unseen after
// this long counts at this value (and is reported as a timeout).
const COHERENCY_TIMEOUT_MS = num('--coherency-timeout-ms', 1500);
const PEERS = list('--peers', ['local', 'bindfs', 'sshfs', 'fuse-native', 'xenfs', 'xenfs-passthrough']);
// The memory test compares the ways guests could share files; local is the file itself, and fuse-native is a
// front end, not a way to share.
const MEMORY_PEERS = new Set(['bindfs', 'sshfs', 'xenfs', 'xenfs-passthrough', 'xenfs-names', 'xenfs-auto']);

const makers: Record<string, () => Peer> = {
  local: () => new LocalPeer(),
  bindfs: () => new BindfsPeer(),
  sshfs: () => new SshfsPeer(),
  'fuse-native': () => new FuseNativePeer(),
  // The portable front end, named: `xenfs guest` would pick the native one where the kernel has passthrough.
  xenfs: () => new XenfsPeer('xenfs', 'fuse-native'),
  // The native front end; only with passthrough agreed, else it is reported unavailable.
  'xenfs-passthrough': () => new XenfsPeer('xenfs-passthrough', 'native-passthrough'),
  // Not run by default, for comparison with the xenfs row (fuse-native): the one-copy mount with a 100 ms name
  // cache, and the administrator's trade of memory for speed (a page cache per mount).
  'xenfs-names': () => new XenfsPeer('xenfs-names', 'fuse-native', ['--name-cache-ms', '100']),
  'xenfs-auto': () => new XenfsPeer('xenfs-auto', 'fuse-native', ['--cache', 'auto']),
};

/** A warm-up pass, then the median of PASSES. */
function measured(run: () => number): number {
  run();
  return median(Array.from({ length: PASSES }, run));
}

async function dataJobs(peer: Peer, base: string, work: string, rows: Row[]): Promise<void> {
  const [m] = await peer.mount(base, work, 1);
  if (!m) throw new Error('no mount');
  const o: FioOptions = { sizeMiB: SIZE_MIB, runtimeS: 5 };
  rows.push({ fs: peer.name, job: 'seqwrite', value: Math.round(measured(() => seqwrite(m.dir, o))), unit: 'MB/s' });
  rows.push({ fs: peer.name, job: 'seqread', value: Math.round(measured(() => seqread(m.dir, o))), unit: 'MB/s' });
  rows.push({ fs: peer.name, job: 'randread', value: Math.round(measured(() => randread(m.dir, o))), unit: 'IOPS' });
  rows.push({ fs: peer.name, job: 'meta', value: Math.round(measured(() => meta(m.dir, META))), unit: 'ops/s' });
  fs.rmSync(path.join(base, 'bench.seq'), { force: true });
}

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-benchfs-base-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-benchfs-work-'));
  const r: Results = { rows: [], memory: {}, coherency: {}, unavailable: {} };
  const { rows, memory, unavailable } = r;
  try {
    for (const name of PEERS) {
      const make = makers[name];
      if (!make) throw new Error(`--peers: unknown peer ${name}`);
      const peer = make();
      try {
        await dataJobs(peer, base, work, rows);
      } catch (err) {
        unavailable[name] = (err as Error).message;
        process.stderr.write(`bench:fs: ${name} could not run: ${(err as Error).message}\n`);
      } finally {
        await peer.teardown();
      }
    }
    // The memory test: one 1 GiB file read whole through MEM_MOUNTS mounts of each kind.
    const memFile = 'memory.bin';
    const fd = fs.openSync(path.join(base, memFile), 'w');
    const chunk = Buffer.alloc(1 << 20, 0x6d);
    for (let i = 0; i < 1024; i++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
    for (const name of PEERS.filter((p) => MEMORY_PEERS.has(p) && !(p in unavailable))) {
      const peer = (makers[name] as () => Peer)();
      try {
        const mounts = await peer.mount(base, work, MEM_MOUNTS);
        const copies = memoryCopies(mounts.map((m) => m.dir), memFile, GiB, () => mounts.flatMap((m) => m.pids()));
        memory[copiesKey(name)] = Number(copies.toFixed(2));
        // Coherency between two of those mounts: a change through one, seen through the other.
        const [a, b] = mounts;
        if (a && b) r.coherency[name] = coherency(a.dir, b.dir, COHERENCY_ROUNDS, COHERENCY_TIMEOUT_MS);
      } catch (err) {
        unavailable[`${name} (memory)`] = (err as Error).message;
      } finally {
        await peer.teardown();
      }
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  const coherencyP99Ms = coherencyP99(r, COHERENCY_ROUNDS, COHERENCY_TIMEOUT_MS);
  printResults(r, MEM_MOUNTS, COHERENCY_TIMEOUT_MS);
  if (json) {
    console.log(JSON.stringify({
      bench: 'fs', results: rows, memory, coherency: r.coherency, coherency_p99_ms: coherencyP99Ms, unavailable,
    }));
  }
}

await main();

// The jobs bench:fs runs on every peer: fio for data (sequential read and write of a 1 GiB file in 128 KiB
// blocks, 4 KiB random reads), a create+stat+unlink loop for metadata, and the memory test (several mounts read
// one 1 GiB file: how many copies of it end up in host memory).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const GiB = 1 << 30;

export interface FioOptions {
  sizeMiB: number;
  runtimeS: number;
}

interface FioJson {
  jobs: Array<{ read: { bw_bytes: number; iops: number }; write: { bw_bytes: number; iops: number } }>;
}

function fio(dir: string, args: string[]): FioJson['jobs'][number] {
  const r = spawnSync('fio', [
    '--output-format=json', '--ioengine=psync', '--invalidate=0', `--directory=${dir}`, '--group_reporting', ...args,
  ], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`fio ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  const job = (JSON.parse(r.stdout) as FioJson).jobs[0];
  if (!job) throw new Error('fio printed no job');
  return job;
}

export function seqwrite(dir: string, o: FioOptions): number {
  return fio(dir, ['--name=seqwrite', '--filename=bench.seq', '--rw=write', '--bs=128k', `--size=${o.sizeMiB}m`])
    .write.bw_bytes / 1e6;
}

export function seqread(dir: string, o: FioOptions): number {
  return fio(dir, ['--name=seqread', '--filename=bench.seq', '--rw=read', '--bs=128k', `--size=${o.sizeMiB}m`])
    .read.bw_bytes / 1e6;
}

export function randread(dir: string, o: FioOptions): number {
  return fio(dir, [
    '--name=randread', '--filename=bench.seq', '--rw=randread', '--bs=4k', `--size=${o.sizeMiB}m`,
    `--runtime=${o.runtimeS}`, '--time_based',
  ]).read.iops;
}

/** create, stat and unlink `count` small files; loops per second. */
export function meta(dir: string, count: number): number {
  const d = path.join(dir, `meta-${process.pid}`);
  fs.mkdirSync(d, { recursive: true });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const p = path.join(d, `f${i}`);
    fs.closeSync(fs.openSync(p, 'w'));
    fs.statSync(p);
    fs.unlinkSync(p);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.rmdirSync(d);
  return count / s;
}

function cachedBytes(): number {
  const m = /^Cached:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function pssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      total += m ? Number(m[1]) * 1024 : 0;
    } catch {
      // a process that is gone holds no memory
    }
  }
  return total;
}

/** Drops clean page cache so the next reading starts from nothing cached; false when the kernel refuses. */
export function dropCaches(): boolean {
  spawnSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

function readThrough(file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0) {
      // reading is the point
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Each mount reads the whole `name` file in turn; the host memory that cost (page-cache growth plus the growth of
 * the peer processes' PSS) in copies of the file.
 */
export function memoryCopies(dirs: string[], name: string, bytes: number, pids: () => number[]): number {
  dropCaches();
  const cache0 = cachedBytes();
  const pss0 = pssBytes(pids());
  for (const d of dirs) readThrough(path.join(d, name));
  const grown = cachedBytes() - cache0 + (pssBytes(pids()) - pss0);
  return grown / bytes;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export interface Coherency {
  /** p99, ms: from a write+close in mount A to a stat in mount B showing the new size. */
  closeP99Ms: number;
  /** p99, ms: from a rename in A to B seeing the new name and not the old one. */
  renameP99Ms: number;
  /** Medians of the same. */
  closeP50Ms: number;
  renameP50Ms: number;
  /** Rounds where B had not seen the change within the timeout (counted at the timeout). */
  timeouts: number;
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)] ?? 0;
}

/** Polls `seen` until true or `timeoutMs`; the ms it took (the timeout when it never became true). */
function waitSeen(seen: () => boolean, timeoutMs: number): { ms: number; timedOut: boolean } {
  const t0 = process.hrtime.bigint();
  for (;;) {
    let ok = false;
    try {
      ok = seen();
    } catch {
      ok = false;
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ok) return { ms, timedOut: false };
    if (ms >= timeoutMs) return { ms: timeoutMs, timedOut: true };
  }
}

/**
 * How long a change made through mount `a` takes to show through mount `b` of the same directory: each round
 * writes a file in `a` (a new size), closes it and polls stat in `b`; then renames it in `a` and polls `b` for the
 * new name. The mounts must be served by other processes (this one polls them synchronously).
 */
export function coherency(a: string, b: string, rounds: number, timeoutMs: number): Coherency {
  const closes: number[] = [];
  const renames: number[] = [];
  let timeouts = 0;
  const dirA = path.join(a, `coherency-${process.pid}`);
  const dirB = path.join(b, `coherency-${process.pid}`);
  fs.mkdirSync(dirA, { recursive: true });
  for (let i = 0; i < rounds; i++) {
    const size = 1 + i;
    // B looks at the file before the change, as a reader that has it cached would have.
    try {
      fs.statSync(path.join(dirB, 'f'));
    } catch {
      // not there yet in the first round
    }
    fs.writeFileSync(path.join(dirA, 'f'), Buffer.alloc(size, 0x61));
    const c = waitSeen(() => fs.statSync(path.join(dirB, 'f')).size === size, timeoutMs);
    closes.push(c.ms);
    if (c.timedOut) timeouts++;
    fs.renameSync(path.join(dirA, 'f'), path.join(dirA, 'g'));
    const r = waitSeen(() => fs.existsSync(path.join(dirB, 'g')) && !fs.existsSync(path.join(dirB, 'f')), timeoutMs);
    renames.push(r.ms);
    if (r.timedOut) timeouts++;
    fs.renameSync(path.join(dirA, 'g'), path.join(dirA, 'f'));
  }
  fs.rmSync(dirA, { recursive: true, force: true });
  const ms = (x: number): number => Number(x.toFixed(3));
  return {
    closeP99Ms: ms(p99(closes)), renameP99Ms: ms(p99(renames)), closeP50Ms: ms(median(closes)),
    renameP50Ms: ms(median(renames)), timeouts,
  };
}

// What bench:fs prints: every row with its ratios to the peers, the xenfs-passthrough row against issue 5's
// targets, the coherency figures, and (with --json) the result object as the last line.
import type { Coherency } from './fs-jobs.ts';

export interface Row {
  fs: string; // local | bindfs | sshfs | fuse-native | xenfs | xenfs-passthrough | xenfs-names | xenfs-auto
  job: 'seqread' | 'seqwrite' | 'randread' | 'meta';
  value: number;
  unit: 'MB/s' | 'IOPS' | 'ops/s';
}

export interface Results {
  rows: Row[];
  /** `<fs>_copies` (dashes as underscores): host memory the memory test cost, in copies of the file. */
  memory: Record<string, number>;
  coherency: Record<string, Coherency>;
  unavailable: Record<string, string>;
}

/** The peer issue 5's targets are about. */
const TARGET_FS = 'xenfs-passthrough';

// Issue 5: data jobs against the local directory, metadata against bindfs --multithreaded.
const TARGETS: Array<{ job: Row['job']; peer: string; atLeast: number }> = [
  { job: 'seqread', peer: 'local', atLeast: 0.9 },
  { job: 'randread', peer: 'local', atLeast: 0.9 },
  { job: 'seqwrite', peer: 'local', atLeast: 0.9 },
  { job: 'meta', peer: 'bindfs', atLeast: 1.0 },
];
const MAX_COPIES = 1.05;

/** The key of a peer's figure in the memory object: `xenfs-passthrough` → `xenfs_passthrough_copies`. */
export const copiesKey = (fs: string): string => `${fs.replace(/-/g, '_')}_copies`;

/**
 * The top-level coherency figure: xenfs-passthrough's larger p99 (close→stat or rename→stat), in ms. Null when
 * it was not measured, or when any change went unseen within the timeout: a p99 would then be the timeout itself,
 * not a measurement (the reason goes into `unavailable`).
 */
export function coherencyP99(r: Results, rounds: number, timeoutMs: number): number | null {
  const c = r.coherency[TARGET_FS];
  if (!c) return null;
  if (c.timeouts > 0) {
    r.unavailable.coherency_p99_ms = `${c.timeouts} of ${2 * rounds} ${TARGET_FS} changes were not seen within ` +
      `${timeoutMs} ms (--coherency-timeout-ms)`;
    return null;
  }
  return Math.max(c.closeP99Ms, c.renameP99Ms);
}

export function printResults(r: Results, memMounts: number, timeoutMs: number): void {
  const value = (f: string, job: string): number => r.rows.find((x) => x.fs === f && x.job === job)?.value ?? NaN;
  console.log('fs                 job        value      unit    x sshfs  x bindfs  x local  x fuse-native');
  for (const row of r.rows) {
    const ratio = (peer: string): string => (row.value / value(peer, row.job)).toFixed(2).padStart(8);
    console.log(`${row.fs.padEnd(18)} ${row.job.padEnd(9)} ${String(row.value).padStart(9)}  ${row.unit.padEnd(6)} ` +
      `${ratio('sshfs')} ${ratio('bindfs')} ${ratio('local')} ${ratio('fuse-native')}`);
  }
  console.log(`memory (copies of the file, ${memMounts} mounts): ${JSON.stringify(r.memory)}`);
  for (const [name, c] of Object.entries(r.coherency)) {
    console.log(`coherency ${name}: close→stat p50 ${c.closeP50Ms} / p99 ${c.closeP99Ms} ms, ` +
      `rename→stat p50 ${c.renameP50Ms} / p99 ${c.renameP99Ms} ms` +
      (c.timeouts > 0 ? `, ${c.timeouts} rounds unseen after ${timeoutMs} ms` : ''));
  }
  printTargets(r, value);
  for (const [name, why] of Object.entries(r.unavailable)) console.log(`unavailable: ${name}: ${why}`);
}

/** xenfs-passthrough against issue 5's targets, one line per figure. */
function printTargets(r: Results, value: (fs: string, job: string) => number): void {
  const verdict = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
  console.log(`${TARGET_FS} against issue 5's targets:`);
  for (const t of TARGETS) {
    const ratio = value(TARGET_FS, t.job) / value(t.peer, t.job);
    const ok = Number.isFinite(ratio) ? ratio >= t.atLeast : null;
    console.log(`  ${t.job.padEnd(9)} ${ratio.toFixed(2).padStart(6)}x ${t.peer.padEnd(7)} target >= ` +
      `${t.atLeast.toFixed(2)}x  ${verdict(ok)}`);
  }
  const copies = r.memory[copiesKey(TARGET_FS)];
  console.log(`  memory    ${copies === undefined ? '   n/a' : copies.toFixed(2).padStart(6)} copies  target <= ` +
    `${MAX_COPIES.toFixed(2)}    ${verdict(copies === undefined ? null : copies <= MAX_COPIES)}`);
  const c = r.coherency[TARGET_FS];
  console.log(`  coherency ${c ? `p99 close→stat ${c.closeP99Ms} ms, rename→stat ${c.renameP99Ms} ms` : 'n/a'}` +
    (c ? (c.timeouts > 0 ? `, ${c.timeouts} changes unseen (timed out)` : ', every change seen') : ''));
}

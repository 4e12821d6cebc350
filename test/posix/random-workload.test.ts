// A long seeded random workload through two real guest mounts that share one read-write export: writes at random
// offsets (holes, writes past max_write), reads, truncates, renames (onto existing names too), unlinks, fsyncs and
// creates over a handful of names. Every operation goes to a randomly chosen mount and every result is checked
// byte for byte against an in-memory model (name -> contents); at the end both mounts and the host's export
// directory must equal the model. Mounts are direct I/O with nothing cached, so a change made through one guest
// is what the other reads next — the model has no notion of which guest wrote what.
//
// The seed is fixed so CI is deterministic; XENFS_SEED=N (decimal or 0x hex) replays another. Every assertion
// message names the seed, the step and the last operations, so `XENFS_SEED=N` reproduces a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Dom0 } from '../helpers/dom0.ts';
import { Scope, hostPath, startDom0, uniqueName } from '../helpers/fixtures.ts';
import { GuestMount } from '../helpers/fuse.ts';
import { Prng } from '../helpers/prng.ts';

const SECRET = 'random workload secret';
const DEFAULT_SEED = 0x5eed_2f11;
const STEPS = 2000;
const NAMES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5'];
/** Files stay under this size, so the whole run moves a few tens of MiB at most. */
const MAX_SIZE = 384 * 1024;
/** Above fuse-native's 128 KiB max_write, so some writes and reads are split by the kernel. */
const MAX_IO = 160 * 1024;

function seedFromEnv(): number {
  const raw = process.env.XENFS_SEED;
  if (raw === undefined || raw === '') return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) throw new Error(`XENFS_SEED must be a u32, not ${raw}`);
  return seed;
}

/** A length: mostly small, sometimes page-sized, now and then larger than one FUSE request. */
function ioLength(rng: Prng): number {
  const r = rng.int(10);
  if (r < 5) return 1 + rng.int(512);
  if (r < 8) return 1 + rng.int(16 * 1024);
  return 1 + rng.int(MAX_IO);
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

test('random workload over two guests sharing one export matches an in-memory model byte for byte', { timeout: 60_000 }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (replay with XENFS_SEED=${seed})`);
  const rng = new Prng(seed);
  const a = uniqueName('rw-a');
  const b = uniqueName('rw-b');
  const shared = [{ name: 'home', path: 'shared' }];
  const dom0: Dom0 = await startDom0({
    guests: [{ name: a, secret: SECRET, exports: shared }, { name: b, secret: SECRET, exports: shared }],
  });
  const scope = new Scope();
  scope.defer(() => dom0.cleanup());
  t.after(() => scope.close());
  const mounts: GuestMount[] = [];
  for (const domain of [a, b]) {
    const m = await GuestMount.start({ dom0, domain, secret: SECRET });
    scope.defer(() => m.cleanup());
    mounts.push(m);
  }
  const hostDir = hostPath(dom0, 'shared');

  const model = new Map<string, Buffer>();
  const history: string[] = [];
  let step = 0;
  const where = (): string => `seed=${seed} step=${step}; last ops:\n  ${history.slice(-8).join('\n  ')}`;
  const expectBytes = (got: Buffer, want: Buffer, what: string): void => {
    if (got.equals(want)) return;
    const at = firstDiff(got, want);
    assert.fail(`${what}: ${got.length} bytes, model has ${want.length}; first difference at byte ${at} ` +
      `(got ${got[at]}, model ${want[at]}) — ${where()}`);
  };
  const existing = (): string[] => NAMES.filter((n) => model.has(n));
  const absent = (): string[] => NAMES.filter((n) => !model.has(n));

  /** Every name, size and byte, through both mounts and on the host, against the model. */
  async function checkAll(label: string): Promise<void> {
    const want = [...model.keys()].sort();
    for (const [dir, who] of [[mounts[0]!.dir, 'mount A'], [mounts[1]!.dir, 'mount B'], [hostDir, 'host']] as const) {
      assert.deepEqual((await fsp.readdir(dir)).sort(), want, `${label}: names in ${who} — ${where()}`);
      for (const name of want) {
        const p = path.join(dir, name);
        assert.equal((await fsp.stat(p)).size, model.get(name)!.length, `${label}: size of ${name} in ${who} — ${where()}`);
        expectBytes(await fsp.readFile(p), model.get(name)!, `${label}: ${name} in ${who}`);
      }
    }
  }

  const started = Date.now();
  const counts: Record<string, number> = {};
  for (step = 0; step < STEPS; step++) {
    const mi = rng.int(2);
    const dir = mounts[mi]!.dir;
    const guest = mi === 0 ? 'A' : 'B';
    const at = (name: string): string => path.join(dir, name);
    const have = existing();
    let kind = rng.pick(['write', 'write', 'write', 'read', 'read', 'read', 'truncate', 'rename', 'unlink', 'fsync',
      'create', 'create', 'missing']);
    if (have.length === 0) kind = 'create';
    if (kind === 'create' && absent().length === 0) kind = 'write';
    if (kind === 'missing' && absent().length === 0) kind = 'read';
    counts[kind] = (counts[kind] ?? 0) + 1;

    switch (kind) {
      case 'create': {
        const name = rng.pick(absent());
        const data = rng.int(3) === 0 ? Buffer.alloc(0) : rng.bytes(ioLength(rng));
        history.push(`${step} ${guest} create ${name} len=${data.length}`);
        await fsp.writeFile(at(name), data, { flag: 'wx' });
        model.set(name, data);
        break;
      }
      case 'write':
      case 'fsync': {
        const name = rng.pick(have);
        const cur = model.get(name)!;
        const len = Math.min(ioLength(rng), MAX_SIZE);
        // Mostly inside or just past the end; sometimes far past it, leaving a hole of zeros.
        const off = rng.int(4) === 0 ? rng.int(MAX_SIZE - len + 1) : rng.int(Math.min(cur.length + 1, MAX_SIZE - len + 1));
        const data = rng.bytes(len);
        history.push(`${step} ${guest} ${kind} ${name} off=${off} len=${len}`);
        const fh = await fsp.open(at(name), 'r+');
        try {
          const { bytesWritten } = await fh.write(data, 0, len, off);
          assert.equal(bytesWritten, len, `short write — ${where()}`);
          if (kind === 'fsync') await (rng.int(2) === 0 ? fh.sync() : fh.datasync());
        } finally {
          await fh.close();
        }
        const next = Buffer.alloc(Math.max(cur.length, off + len));
        cur.copy(next);
        data.copy(next, off);
        model.set(name, next);
        break;
      }
      case 'read': {
        const name = rng.pick(have);
        const cur = model.get(name)!;
        if (rng.int(4) === 0) {
          history.push(`${step} ${guest} readFile ${name}`);
          expectBytes(await fsp.readFile(at(name)), cur, `readFile ${name} through ${guest}`);
          break;
        }
        const off = rng.int(cur.length + 64);
        const len = ioLength(rng);
        history.push(`${step} ${guest} read ${name} off=${off} len=${len}`);
        const buf = Buffer.alloc(len);
        const fh = await fsp.open(at(name), 'r');
        let total = 0;
        try {
          // A read may return fewer bytes than asked; keep reading until EOF or the buffer is full.
          for (;;) {
            const { bytesRead } = await fh.read(buf, total, len - total, off + total);
            if (bytesRead === 0) break;
            total += bytesRead;
            if (total === len) break;
          }
        } finally {
          await fh.close();
        }
        expectBytes(buf.subarray(0, total), cur.subarray(Math.min(off, cur.length), Math.min(off + len, cur.length)),
          `read ${name} off=${off} len=${len} through ${guest}`);
        break;
      }
      case 'truncate': {
        const name = rng.pick(have);
        const cur = model.get(name)!;
        const size = rng.int(3) === 0 ? 0 : rng.int(Math.min(cur.length * 2 + 4096, MAX_SIZE));
        history.push(`${step} ${guest} truncate ${name} size=${size}`);
        if (rng.int(2) === 0) {
          await fsp.truncate(at(name), size);
        } else {
          const fh = await fsp.open(at(name), 'r+');
          try {
            await fh.truncate(size);
          } finally {
            await fh.close();
          }
        }
        const next = Buffer.alloc(size);
        cur.copy(next, 0, 0, Math.min(size, cur.length));
        model.set(name, next);
        break;
      }
      case 'rename': {
        const from = rng.pick(have);
        const to = rng.pick(NAMES.filter((n) => n !== from));
        history.push(`${step} ${guest} rename ${from} -> ${to}${model.has(to) ? ' (replacing)' : ''}`);
        await fsp.rename(at(from), at(to));
        model.set(to, model.get(from)!);
        model.delete(from);
        break;
      }
      case 'unlink': {
        const name = rng.pick(have);
        history.push(`${step} ${guest} unlink ${name}`);
        await fsp.unlink(at(name));
        model.delete(name);
        break;
      }
      case 'missing': {
        const name = rng.pick(absent());
        history.push(`${step} ${guest} stat missing ${name}`);
        await assert.rejects(fsp.stat(at(name)), { code: 'ENOENT' }, `${name} should not exist — ${where()}`);
        break;
      }
      default:
        throw new Error(`unknown op ${kind}`);
    }
    if (step % 250 === 249) await checkAll(`checkpoint after step ${step}`);
  }
  await checkAll('final');
  // The host directory holds exactly the model's files, read directly rather than through any mount.
  for (const name of fs.readdirSync(hostDir)) expectBytes(fs.readFileSync(path.join(hostDir, name)), model.get(name)!, `host ${name}`);
  t.diagnostic(`${STEPS} ops in ${Date.now() - started} ms: ${JSON.stringify(counts)}`);
});

// A FUSE server written by hand for tests: it serves the already negotiated connection it inherits as fd 3, with
// a fixed set of regular files in the root, each opened with FOPEN_PASSTHROUGH and a backing id it was told. It
// plays a guest front end that may do as it likes with backing ids — exactly what dom0 must not have to trust.
// It prints the name of every opcode it receives on a line of its own, as it receives it (a blocking read of
// /dev/fuse holds its only thread, so the test reads its output and stops it with SIGKILL). READ and WRITE are
// answered EIO, so data that arrives through the mount can only have come from the backing file.
// Usage: node --import tsx fuse-double.ts '{"files":[{"name":"f","size":5,"backingId":1}]}'
import fs from 'node:fs';
import { fuseReply } from './fuse-reply.ts';

interface FileSpec {
  name: string;
  size: number;
  backingId: number;
}

const spec = JSON.parse(process.argv[2] ?? '{"files":[]}') as { files: FileSpec[] };
const FD = 3;
const ROOT = 1n;
const ENOENT = 2;
const EIO = 5;
const ENOSYS = 38;
const FOPEN_PASSTHROUGH = 1 << 7;
const Opcode = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, OPEN: 14, READ: 15, WRITE: 16, RELEASE: 18, FLUSH: 25,
  INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42,
} as const;
const names = new Map<number, string>(Object.entries(Opcode).map(([k, v]) => [v, k]));

// fuse_attr (88 bytes) for a node: the root directory, or file i at nodeid 2 + i.
function attr(node: bigint): Buffer {
  const b = Buffer.alloc(88);
  const file = node === ROOT ? null : spec.files[Number(node - 2n)];
  b.writeBigUInt64LE(node, 0); // ino
  b.writeBigUInt64LE(BigInt(file?.size ?? 0), 8);
  b.writeUInt32LE(file ? 0o100666 : 0o40777, 60); // mode
  b.writeUInt32LE(1, 64); // nlink
  b.writeUInt32LE(4096, 80); // blksize
  return b;
}

const reply = (unique: bigint, error: number, body?: Buffer): void => fuseReply(FD, unique, error, body);


const buf = Buffer.alloc((1 << 20) + 4096);
for (;;) {
  let n: number;
  try {
    n = fs.readSync(FD, buf, 0, buf.length, null);
  } catch {
    process.exit(0); // ENODEV: unmounted and aborted
  }
  if (n < 40) continue;
  const opcode = buf.readUInt32LE(4);
  const unique = buf.readBigUInt64LE(8);
  const node = buf.readBigUInt64LE(16);
  fs.writeSync(1, `${names.get(opcode) ?? `op${opcode}`}\n`);
  switch (opcode) {
    case Opcode.LOOKUP: {
      const wanted = buf.toString('utf8', 40, n).replace(/\0.*$/s, '');
      const i = node === ROOT ? spec.files.findIndex((f) => f.name === wanted) : -1;
      if (i < 0) {
        reply(unique, ENOENT);
        break;
      }
      const entry = Buffer.alloc(40); // nodeid, generation, entry_valid, attr_valid (+ nsec): nothing cached
      entry.writeBigUInt64LE(BigInt(2 + i), 0);
      reply(unique, 0, Buffer.concat([entry, attr(BigInt(2 + i))]));
      break;
    }
    case Opcode.GETATTR:
    case Opcode.SETATTR:
      reply(unique, 0, Buffer.concat([Buffer.alloc(16), attr(node)]));
      break;
    case Opcode.OPEN: {
      const file = spec.files[Number(node - 2n)];
      if (!file) {
        reply(unique, ENOSYS);
        break;
      }
      const out = Buffer.alloc(16);
      out.writeBigUInt64LE(node, 0); // fh
      out.writeUInt32LE(FOPEN_PASSTHROUGH, 8);
      out.writeInt32LE(file.backingId, 12);
      reply(unique, 0, out);
      break;
    }
    case Opcode.FLUSH:
    case Opcode.RELEASE:
      reply(unique, 0);
      break;
    case Opcode.READ:
    case Opcode.WRITE:
      reply(unique, EIO);
      break;
    case Opcode.FORGET:
    case Opcode.BATCH_FORGET:
    case Opcode.INTERRUPT:
      break; // no reply
    case Opcode.DESTROY:
      reply(unique, 0);
      process.exit(0);
      break; // (process.exit does not return; the linter cannot know)
    default:
      reply(unique, ENOSYS);
  }
}

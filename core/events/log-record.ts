// Decoding the change-event log's records (layout in native/src/event-log.hpp). Pure: bytes in, events out,
// every length checked before use. The log is dom0's own file, but a torn tail or a damaged disk must end in a
// clear error or a clean stop, never in an event made of garbage.
import zlib from 'node:zlib';
import { EVENT_KINDS, type ChangeEvent, type EventOrigin } from './change-event.ts';

export const RECORD_HEADER = 64;
const ORIGINS: readonly EventOrigin[] = ['guest', 'host'];
const decoder = new TextDecoder('utf-8', { fatal: false });

export type DecodeResult =
  | { kind: 'event'; event: ChangeEvent; length: number }
  /** Fewer bytes than the record needs: the rest is not written (or not synced) yet. */
  | { kind: 'partial' }
  | { kind: 'corrupt'; reason: string };

/** Decodes the record starting at `at` in `buf`. */
export function decodeRecord(buf: Buffer, at: number): DecodeResult {
  if (buf.length - at < RECORD_HEADER) return { kind: 'partial' };
  const len = buf.readUInt32LE(at);
  if (len < RECORD_HEADER) return { kind: 'corrupt', reason: `record length ${len} is below the header size` };
  if (buf.length - at < len) return { kind: 'partial' };
  const crc = zlib.crc32(buf.subarray(at + 8, at + len));
  if (crc !== buf.readUInt32LE(at + 4)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const kind = EVENT_KINDS[buf[at + 24] ?? 255];
  const origin = ORIGINS[buf[at + 25] ?? 255];
  if (!kind || !origin) return { kind: 'corrupt', reason: 'unknown kind or origin' };
  const lens = [0, 1, 2, 3].map((i) => buf.readUInt16LE(at + 28 + 2 * i));
  if (RECORD_HEADER + lens.reduce((a, b) => a + b, 0) !== len) {
    return { kind: 'corrupt', reason: 'string lengths do not add up to the record length' };
  }
  let p = at + RECORD_HEADER;
  const [guest, exp, path, oldPath] = lens.map((n) => {
    const s = decoder.decode(buf.subarray(p, p + n));
    p += n;
    return s;
  });
  const event: ChangeEvent = {
    seq: Number(buf.readBigUInt64LE(at + 8)),
    guest: guest ?? '',
    export: exp ?? '',
    kind,
    path: path ?? '',
    dir: buf[at + 26] === 1,
    size: Number(buf.readBigUInt64LE(at + 40)),
    mtime: buf.readDoubleLE(at + 48),
    ino: Number(buf.readBigUInt64LE(at + 56)),
    time: buf.readDoubleLE(at + 16),
    origin,
  };
  if (kind === 'renamed') event.oldPath = oldPath ?? '';
  return { kind: 'event', event, length: len };
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../core/errors.ts';
import { type ParsedResponse, ResponseParser, streamDataLength } from '../../../core/frontend/response-parser.ts';
import { encodeResponse } from '../../../core/protocol/encode.ts';
import { SLOT_SIZE } from '../../../core/protocol/layout.ts';
import { Prng } from '../../helpers/prng.ts';

interface Expected {
  id: bigint;
  outLen: number;
  status: number;
  len: number;
  data: Buffer | null;
}

// A random batch of outstanding requests and the byte stream a well-behaved peer would answer them with.
function scenario(rng: Prng): { expected: Expected[]; bytes: Buffer } {
  const expected: Expected[] = [];
  for (let i = 0, n = 1 + rng.int(6); i < n; i++) {
    const outLen = rng.pick([0, 0, 1, 100, 4096]);
    const status = rng.int(4) === 0 ? -(1 + rng.int(4095)) : 0;
    const len = outLen === 0 ? rng.int(1000) : rng.int(outLen + 1);
    const data = status === 0 && outLen > 0 ? rng.bytes(len) : null;
    const id = BigInt(i + 1) * 7n;
    expected.push({ id, outLen, status, len, data });
  }
  // Responses may come in any order.
  for (let i = expected.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [expected[i], expected[j]] = [expected[j] as Expected, expected[i] as Expected];
  }
  const bytes = Buffer.concat(expected.flatMap((e) => {
    const slot = encodeResponse({ id: e.id, status: e.status, len: e.len });
    return e.data === null ? [slot] : [slot, e.data];
  }));
  return { expected, bytes };
}

function parserFor(expected: readonly Expected[]): { parser: ResponseParser; out: ParsedResponse[] } {
  const outstanding = new Map(expected.map((e) => [e.id, e.outLen]));
  const out: ParsedResponse[] = [];
  const parser = new ResponseParser((id) => outstanding.get(id), (r) => {
    outstanding.delete(r.id);
    out.push(r);
  });
  return { parser, out };
}

function splitAt(rng: Prng, bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const step = rng.pick([1, 1, 7, 511, 512, 513, 4096, bytes.length]);
    chunks.push(Buffer.from(bytes.subarray(at, at + step)));
    at += step;
  }
  return chunks;
}

test('streamDataLength: data only for a successful request that asked for output', () => {
  assert.equal(streamDataLength(0, 10, 64), 10);
  assert.equal(streamDataLength(0, 0, 64), 0);
  assert.equal(streamDataLength(-2, 10, 64), null);
  assert.equal(streamDataLength(0, 999, 0), null);
  assert.throws(() => streamDataLength(0, 65, 64), ProtocolError);
});

test('fuzz: any split of a valid stream yields the same responses (2k cases, fixed seed)', () => {
  const rng = new Prng(0xc0ffee);
  for (let i = 0; i < 2000; i++) {
    const { expected, bytes } = scenario(rng);
    const { parser, out } = parserFor(expected);
    for (const chunk of splitAt(rng, bytes)) parser.push(chunk);
    assert.equal(parser.buffered, 0, `case ${i}`);
    assert.deepEqual(out.map((r) => [r.id, r.data]), expected.map((e) => [e.id, e.data]), `case ${i}`);
    for (const r of out) assert.equal(r.slot.length, SLOT_SIZE);
  }
});

test('fuzz: corrupted, truncated or appended streams only ever throw ProtocolError (8k cases, fixed seed)', () => {
  const rng = new Prng(0xbadf00d);
  let refused = 0;
  for (let i = 0; i < 8000; i++) {
    const { expected, bytes } = scenario(rng);
    let input: Buffer;
    switch (rng.int(4)) {
      case 0: input = rng.bytes(rng.int(3000)); break;
      case 1: input = bytes.subarray(0, rng.int(bytes.length)); break;
      case 2: input = Buffer.concat([bytes, rng.bytes(1 + rng.int(1200))]); break;
      default: {
        input = Buffer.from(bytes);
        for (let n = 1 + rng.int(6); n > 0; n--) input[rng.int(input.length)] = rng.u32() & 0xff;
      }
    }
    const { parser, out } = parserFor(expected);
    try {
      for (const chunk of splitAt(rng, input)) parser.push(chunk);
      assert.ok(out.length <= expected.length, `case ${i}: more responses than requests`);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `case ${i}: threw ${String(err)}`);
      refused++;
      assert.throws(() => parser.push(Buffer.alloc(1)), ProtocolError, 'a failed parser stays failed');
    }
  }
  assert.ok(refused > 1000, `only ${refused} streams were refused`);
});

test('a duplicate response is an unknown id', () => {
  const { parser } = parserFor([{ id: 1n, outLen: 0, status: 0, len: 0, data: null }]);
  const slot = encodeResponse({ id: 1 });
  assert.throws(() => parser.push(Buffer.concat([slot, slot])), ProtocolError);
  assert.equal(parser.culpritId, null);
});

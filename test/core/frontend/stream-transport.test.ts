import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { DisconnectedError, ProtocolError } from '../../../core/errors.ts';
import { type StreamTransport, connectStream } from '../../../core/frontend/stream-transport.ts';
import type { DecodedRequest } from '../../../core/protocol/decode.ts';
import { decodeResponse } from '../../../core/protocol/decode.ts';
import { encodeRequest, encodeResponse } from '../../../core/protocol/encode.ts';
import { Op } from '../../../core/protocol/opcodes.ts';
import { type RequestHandler, type StreamPeer, startStreamPeer } from '../../helpers/stream-peer.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(handler: RequestHandler, maxInFlight?: number): Promise<{ peer: StreamPeer; t: StreamTransport }> {
  const peer = await startStreamPeer(handler);
  cleanups.push(() => peer.close());
  const t = await connectStream({ path: peer.path }, maxInFlight === undefined ? {} : { maxInFlight });
  cleanups.push(() => t.close());
  return { peer, t };
}

// A READ whose offset identifies it; the peer answers with `len` bytes of the offset's low byte.
function read(offset: number, len: number) {
  return encodeRequest({ op: Op.READ, fh: 1, offset, len });
}

function answerRead(req: DecodedRequest, socket: net.Socket, len = req.len): void {
  socket.write(Buffer.concat([encodeResponse({ id: req.id, len }), Buffer.alloc(len, Number(req.offset & 0xffn))]));
}

test('a request round-trips with its output data', async () => {
  const { t } = await setup((req, s) => answerRead(req, s, 100));
  const rsp = await t.call(read(7, 4096));
  assert.equal(decodeResponse(rsp.slot).len, 100);
  assert.deepEqual(rsp.data, Buffer.alloc(100, 7));
});

test('responses out of order are matched to their requests by id', async () => {
  const held: Array<[DecodedRequest, net.Socket]> = [];
  const { t } = await setup((req, s) => {
    held.push([req, s]);
    if (held.length === 10) for (const [r, sock] of held.reverse()) answerRead(r, sock, 10 + Number(r.offset));
  });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => t.call(read(i, 64))));
  results.forEach((rsp, i) => assert.deepEqual(rsp.data, Buffer.alloc(10 + i, i)));
  const ids = new Set(results.map((r) => decodeResponse(r.slot).id));
  assert.equal(ids.size, 10);
});

test('responses split into 1-byte writes are reassembled', async () => {
  const held: DecodedRequest[] = [];
  const { t } = await setup((req, s) => {
    held.push(req);
    if (held.length < 2) return;
    // Both responses, second first, dribbled one byte per write with a turn of the event loop between.
    const bytes = Buffer.concat(held.reverse().map((r) => Buffer.concat([
      encodeResponse({ id: r.id, len: 3 }), Buffer.from(r.offset === 1n ? 'abc' : 'xyz'),
    ])));
    let i = 0;
    const step = (): void => {
      if (i < bytes.length) s.write(bytes.subarray(i, ++i), () => setImmediate(step));
    };
    step();
  });
  const [a, b] = await Promise.all([t.call(read(1, 16)), t.call(read(2, 16))]);
  assert.equal(a.data?.toString(), 'abc');
  assert.equal(b.data?.toString(), 'xyz');
});

test('an external payload follows its slot', async () => {
  const data = Buffer.alloc(5000, 9);
  let got: Buffer | null = null;
  const { t } = await setup((req, s) => {
    got = req.data;
    s.write(encodeResponse({ id: req.id, len: req.data.length }));
  });
  const rsp = await t.call(encodeRequest({ op: Op.WRITE, fh: 3, data }));
  assert.equal(decodeResponse(rsp.slot).len, 5000);
  assert.equal(rsp.data, null);
  assert.deepEqual(got, data);
});

test('an error response carries no data, and a size query carries none either', async () => {
  const { t } = await setup((req, s) => {
    if (req.op === Op.READ) s.write(encodeResponse({ id: req.id, status: -5 }));
    else s.write(encodeResponse({ id: req.id, len: 4242 }));
  });
  const failed = await t.call(read(0, 4096));
  assert.equal(decodeResponse(failed.slot).status, -5);
  assert.equal(failed.data, null);
  const size = await t.call(encodeRequest({ op: Op.LISTXATTR, node: 1, len: 0 }));
  assert.equal(decodeResponse(size.slot).len, 4242);
  // The stream stays in step after both: a further call still works.
  assert.equal(decodeResponse((await t.call(read(0, 8))).slot).status, -5);
});

test('a len larger than the request asked for is a ProtocolError and closes the transport', async () => {
  const { t } = await setup((req, s) => {
    if (req.offset === 1n) s.write(encodeResponse({ id: req.id, len: req.len + 1 }));
  });
  const liar = t.call(read(1, 64));
  const bystander = t.call(read(2, 64));
  await assert.rejects(liar, ProtocolError);
  await assert.rejects(bystander, (err: unknown) => err instanceof DisconnectedError && err.cause instanceof ProtocolError);
  await assert.rejects(t.call(read(3, 64)), DisconnectedError);
});

test('a response for an unknown id is a ProtocolError', async () => {
  const { t } = await setup((req, s) => s.write(encodeResponse({ id: req.id + 1000n })));
  await assert.rejects(t.call(read(1, 64)), (err: unknown) => err instanceof DisconnectedError && err.cause instanceof ProtocolError);
});

test('a malformed status is a ProtocolError', async () => {
  const { t } = await setup((req, s) => {
    const slot = encodeResponse({ id: req.id });
    slot.writeInt32LE(7, 8);
    s.write(slot);
  });
  await assert.rejects(t.call(read(1, 64)), DisconnectedError);
});

test('the peer closing rejects every outstanding call with DisconnectedError', async () => {
  let seen = 0;
  const { t } = await setup((_req, s) => {
    if (++seen === 3) s.end();
  });
  const calls = [t.call(read(1, 8)), t.call(read(2, 8)), t.call(read(3, 8))];
  for (const c of calls) await assert.rejects(c, DisconnectedError);
  await assert.rejects(t.call(read(4, 8)), DisconnectedError);
});

test('close() rejects outstanding calls and is idempotent', async () => {
  const { t } = await setup(() => {});
  const pending = t.call(read(1, 8));
  const first = t.close();
  assert.equal(t.close(), first);
  await first;
  await assert.rejects(pending, DisconnectedError);
});

test('no more than maxInFlight requests are on the wire; the rest queue', async () => {
  let outstanding = 0;
  let peak = 0;
  const { t } = await setup((req, s) => {
    outstanding++;
    peak = Math.max(peak, outstanding);
    setTimeout(() => {
      outstanding--;
      answerRead(req, s, 1);
    }, 2);
  }, 4);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.call(read(i, 8))));
  assert.equal(results.length, 20);
  assert.equal(peak, 4);
  assert.equal(t.inFlight, 0);
  assert.equal(t.queued, 0);
});

test('caller bugs are refused before anything is sent', async () => {
  const { t } = await setup(() => assert.fail('nothing should reach the peer'));
  await assert.rejects(t.call({ slot: Buffer.alloc(100), payload: null, outLen: 0 }), RangeError);
  const ext = encodeRequest({ op: Op.WRITE, fh: 1, data: Buffer.alloc(400) });
  await assert.rejects(t.call({ slot: ext.slot, payload: null, outLen: 0 }), RangeError);
});

test('connecting to a missing socket is a DisconnectedError', async () => {
  await assert.rejects(connectStream({ path: '/nonexistent/xenfs.sock' }), DisconnectedError);
});

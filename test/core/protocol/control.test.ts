// The control-channel decoders take JSON from an untrusted peer: valid messages decode, anything else is a
// ProtocolError naming the field — never another exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFuseAttach, decodeHello, decodeWelcome } from '../../../core/protocol/control.ts';
import { ProtocolError } from '../../../core/errors.ts';
import { Prng } from '../../helpers/prng.ts';

const goodHello = {
  type: 'hello',
  domain: 'vm1',
  secret: 's',
  version: 1,
  features: 31,
  transport: 'ring',
  ring: { memPages: 100, grantTable: { offset: 0, entries: 64 }, ringRefs: [0, 1], ringSlots: 64 },
};

test('a valid hello decodes', () => {
  const h = decodeHello(goodHello);
  assert.equal(h.domain, 'vm1');
  assert.deepEqual(h.ring?.ringRefs, [0, 1]);
  assert.equal(decodeHello({ ...goodHello, transport: 'tcp', ring: undefined }).ring, undefined);
});

test('each bad field is named', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...goodHello, domain: '' }, /hello\.domain/],
    [{ ...goodHello, domain: 'x'.repeat(65) }, /hello\.domain/],
    [{ ...goodHello, version: 1.5 }, /hello\.version/],
    [{ ...goodHello, features: -1 }, /hello\.features/],
    [{ ...goodHello, transport: 'carrier-pigeon' }, /hello\.transport/],
    [{ ...goodHello, secret: 42 }, /hello\.secret/],
    [{ ...goodHello, ring: { ...goodHello.ring, ringSlots: 48 } }, /ringSlots/],
    [{ ...goodHello, ring: { ...goodHello.ring, ringSlots: 1024 } }, /ringSlots/],
    [{ ...goodHello, ring: { ...goodHello.ring, ringRefs: [0, 64] } }, /ringRefs\[1\]/],
    [{ ...goodHello, ring: { ...goodHello.ring, ringRefs: [] } }, /ringRefs/],
    [{ ...goodHello, ring: { ...goodHello.ring, grantTable: { offset: 0, entries: 1e9 } } }, /grantTable\.entries/],
    [{ ...goodHello, ring: { ...goodHello.ring, memPages: 2 ** 40 } }, /memPages/],
    [{ ...goodHello, ring: null }, /hello\.ring/],
  ];
  for (const [body, re] of cases) assert.throws(() => decodeHello(body), (e: unknown) => e instanceof ProtocolError && re.test(e.message));
});

function randomJson(rng: Prng, depth: number): unknown {
  const kind = rng.int(depth > 3 ? 5 : 7);
  switch (kind) {
    case 0: return null;
    case 1: return rng.int(2) === 0;
    case 2: return rng.pick([0, -1, 1.5, 2 ** 53, NaN, 64, 1, 4096, 1e300]);
    case 3: return rng.pick(['', 'ring', 'hello', 'welcome', 'x'.repeat(300), '\u0000']);
    case 4: return rng.pick(['unix', 'tcp', 'error']);
    case 5: return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default: {
      const keys = ['type', 'domain', 'secret', 'version', 'features', 'transport', 'ring', 'memPages', 'grantTable',
        'offset', 'entries', 'ringRefs', 'ringSlots', 'exports', 'name', 'node', 'limits', 'stream', 'token'];
      const o: Record<string, unknown> = {};
      for (let i = rng.int(8); i > 0; i--) o[rng.pick(keys)] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

test('fuzz: random JSON never throws anything but ProtocolError', () => {
  const rng = new Prng(0xc0ffee);
  for (let i = 0; i < 20000; i++) {
    const body = i % 3 === 0 ? { ...goodHello, ...(randomJson(rng, 1) as object) } : randomJson(rng, 0);
    for (const decode of [decodeHello, decodeWelcome, (b: unknown) => decodeFuseAttach(b, 3)]) {
      try {
        decode(body);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `case ${i}: ${String(err)} for ${JSON.stringify(body)}`);
      }
    }
  }
});

test('welcome: the cache mode is auto only when dom0 says so explicitly', () => {
  const welcome = { type: 'welcome', version: 1, features: 0, exports: [{ name: 'home', node: 1 }], limits: {} };
  const cacheOf = (body: Record<string, unknown>): string => {
    const w = decodeWelcome(body);
    assert.equal(w.type, 'welcome');
    return w.type === 'welcome' ? w.cache : '';
  };
  assert.equal(cacheOf(welcome), 'none');
  assert.equal(cacheOf({ ...welcome, cache: 'auto' }), 'auto');
  assert.equal(cacheOf({ ...welcome, cache: 'AUTO' }), 'none');
  assert.equal(cacheOf({ ...welcome, cache: 1 }), 'none');
});

test('fuse-attach: root is one of the guest\'s export roots, 1..n', () => {
  assert.deepEqual(decodeFuseAttach({ type: 'fuse-attach', root: 2 }, 2), { type: 'fuse-attach', root: 2 });
  assert.deepEqual(decodeFuseAttach({ type: 'fuse-attach', root: 1 }, 1), { type: 'fuse-attach', root: 1 });
  const refused: Array<[unknown, number]> = [
    [{ type: 'fuse-attach' }, 1], [{ type: 'fuse-attach', root: 0 }, 1], [{ type: 'fuse-attach', root: 2 }, 1],
    [{ type: 'fuse-attach', root: 1.5 }, 2], [{ type: 'fuse-attach', root: '1' }, 1], [{ type: 'fuse-attach', root: 1 }, 0],
    [{ type: 'hello', root: 1 }, 1], [null, 1],
  ];
  for (const [body, n] of refused) {
    assert.throws(() => decodeFuseAttach(body, n), ProtocolError, JSON.stringify(body));
  }
});

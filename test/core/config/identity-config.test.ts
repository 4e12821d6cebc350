// Config errors for per-guest identity name the file and the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../core/config/config.ts';
import { ConfigError } from '../../../core/errors.ts';

const guest = (extra: Record<string, unknown>) => ({
  stateDir: 's',
  guests: [{ name: 'g', secret: 'x', exports: [{ name: 'e', path: 'e' }], ...extra }],
});

test('owner and idMap are read, and their errors name the key', () => {
  const ok = parseConfig(guest({ owner: { uid: 10, gid: 11 }, idMap: { uid: [{ guest: 0, host: 10, count: 1 }] } }), '/x/c.json');
  assert.deepEqual(ok.guests[0]?.owner, { uid: 10, gid: 11 });
  assert.deepEqual(ok.guests[0]?.idMap, { uid: [{ guest: 0, host: 10, count: 1 }], gid: [] });
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ owner: { uid: 0, gid: 5 } }, 'guests[0].owner'],
    [{ owner: { uid: 5 } }, 'guests[0].owner.gid'],
    [{ owner: { uid: 5, gid: 5, shell: 'x' } }, 'guests[0].owner.shell'],
    [{ idMap: { uid: [{ guest: 0, host: 1 }] } }, 'guests[0].idMap.uid[0].count'],
    [{ idMap: { uid: [{ guest: 0xfffffff0, host: 1, count: 100 }] } }, 'guests[0].idMap.uid[0]'],
    [{ idMap: { users: [] } }, 'guests[0].idMap.users'],
  ];
  for (const [extra, key] of bad) {
    assert.throws(() => parseConfig(guest(extra), '/x/c.json'),
      (e: unknown) => e instanceof ConfigError && e.message.includes('/x/c.json') && e.message.includes(key), key);
  }
});

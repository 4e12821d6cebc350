// Grant-table semantics, checked on the real native layer: the granter's table in its own memory and a grantee
// mapping through it, as dom0 does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DomainMemory, PAGE_SIZE } from '../../../core/xen/memory.ts';
import { GrantMap, GrantTable } from '../../../core/xen/grant-table.ts';

const PAGES = 16;
const ENTRIES = 64;

function setup(opts: { maxMapped?: number; domid?: number } = {}) {
  const mem = new DomainMemory(PAGES, 'grant-test');
  const table = new GrantTable(mem, 0, ENTRIES);
  const map = new GrantMap(mem.fd, PAGES, 0, ENTRIES, { domid: opts.domid ?? 0, maxMapped: opts.maxMapped ?? 64 });
  return { mem, table, map };
}

function errnoOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { errno?: number }).errno;
  }
  return undefined;
}

test('a granted page is shared: the grantee reads what the granter wrote, and writes back', () => {
  const { mem, table, map } = setup();
  mem.bytes.write('hello from the guest', 5 * PAGE_SIZE);
  table.grant(3, 0, 5, false);
  const m = map.map([3], true);
  assert.equal(m.read()?.subarray(0, 20).toString(), 'hello from the guest');
  m.write(0, Buffer.from('dom0 was here'));
  assert.equal(mem.bytes.subarray(5 * PAGE_SIZE, 5 * PAGE_SIZE + 13).toString(), 'dom0 was here');
  map.unmap(m.id);
  assert.equal(map.mapped, 0);
});

test('mapping checks the grantee, the permit bit and the reference', () => {
  const { table, map } = setup();
  table.grant(1, 7, 2, false); // granted to domain 7, not to us (0)
  assert.equal(errnoOf(() => map.map([1], false)), 1 /* EPERM */);
  assert.equal(errnoOf(() => map.map([2], false)), 1 /* EPERM: never granted */);
  assert.equal(errnoOf(() => map.map([ENTRIES + 5], false)), 22 /* EINVAL: no such ref */);
  assert.equal(map.mapped, 0);
});

test('a read-only grant cannot be mapped writable', () => {
  const { table, map } = setup();
  table.grant(4, 0, 1, true);
  assert.equal(errnoOf(() => map.map([4], true)), 13 /* EACCES */);
  const m = map.map([4], false);
  assert.ok(m.read());
  map.unmap(m.id);
});

test('a failed batch leaves nothing mapped or pinned', () => {
  const { table, map } = setup();
  table.grant(1, 0, 1, false);
  table.grant(2, 0, 2, false);
  assert.equal(errnoOf(() => map.map([1, 2, 9], false)), 1);
  assert.equal(map.mapped, 0);
  assert.equal(table.endAccess(1), true, 'ref 1 must not stay pinned by the failed batch');
});

test('ending access fails while the grant is mapped, and succeeds after unmap', () => {
  const { table, map } = setup();
  table.grant(6, 0, 3, false);
  const m = map.map([6], false);
  assert.equal(table.endAccess(6), false);
  map.unmap(m.id);
  assert.equal(table.endAccess(6), true);
  assert.equal(errnoOf(() => map.map([6], false)), 1, 'a revoked grant cannot be mapped');
});

test('two mappings of one grant keep it pinned until both are gone', () => {
  const { table, map } = setup();
  table.grant(8, 0, 4, false);
  const a = map.map([8], false);
  const b = map.map([8], true);
  map.unmap(a.id);
  assert.equal(table.endAccess(8), false, 'still mapped writable by b');
  map.unmap(b.id);
  assert.equal(table.endAccess(8), true);
});

test('granting checks the reference, the frame and reuse', () => {
  const { table } = setup();
  assert.throws(() => table.grant(ENTRIES, 0, 1, false));
  assert.throws(() => table.grant(1, 0, PAGES, false), /grant failed/);
  table.grant(1, 0, 1, false);
  assert.throws(() => table.grant(1, 0, 2, false), /grant failed/, 'an entry in use cannot be granted again');
});

test('the per-domain mapping limit is enforced', () => {
  const { table, map } = setup({ maxMapped: 4 });
  for (let i = 0; i < 6; i++) table.grant(i, 0, i, false);
  const m = map.map([0, 1, 2, 3], false);
  assert.equal(errnoOf(() => map.map([4], false)), 105 /* ENOBUFS */);
  map.unmap(m.id);
  map.unmap(map.map([4, 5], false).id);
});

test('a read-only mapping has no write permission: writing through it faults', () => {
  // The write must really hit a PROT_READ page, so it runs in a child whose death we can observe.
  const script = `
    import { DomainMemory } from './core/xen/memory.ts';
    import { GrantMap, GrantTable } from './core/xen/grant-table.ts';
    const mem = new DomainMemory(4, 'ro-test');
    new GrantTable(mem, 0, 8).grant(1, 0, 2, true);
    const m = new GrantMap(mem.fd, 4, 0, 8).map([1], false);
    process.stdout.write('mapped\\n');
    m.write(0, Buffer.from('must not land'));
    process.stdout.write('wrote\\n');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('../../..', import.meta.url).pathname,
    encoding: 'utf8',
  });
  assert.match(r.stdout, /mapped/);
  assert.doesNotMatch(r.stdout, /wrote/);
  assert.equal(r.signal, 'SIGSEGV');
});

test('a grantee needs a sealed memfd: an unsealed or too-small memory is refused', () => {
  const mem = new DomainMemory(2, 'small');
  assert.throws(() => new GrantMap(mem.fd, 64, 0, 8), /smaller than the layout/);
});

// EchoFilter alone: which observed states are the echo of a noted server event, for how long, and which of
// several notes covering a name decides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeEvent } from '../../../core/events/change-event.ts';
import { EchoFilter } from '../../../core/events/echo-filter.ts';
import type { StatState } from '../../../core/events/file-state.ts';

const ROOT = '/srv/vm1';

function ev(kind: ChangeEvent['kind'], p: string, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  return { seq: 1, guest: 'g', export: 'e', kind, path: p, dir: false, size: 10, mtime: 1000.5, ino: 7, time: 5000, origin: 'guest', ...extra };
}

function disk(extra: Partial<StatState> = {}): StatState {
  return { dir: false, size: 10, mtime: 1000.5, ino: 7, mode: 0o100644, uid: 0, gid: 0, ctime: 1000.5, ...extra };
}

test('a state matching the noted one is an echo; any difference in inode, size or mtime is not', () => {
  const f = new EchoFilter({ windowMs: 10_000, maxNotes: 100 });
  f.note(ROOT, ev('modified', 'a/b'));
  assert.equal(f.isEcho('/srv/vm1/a/b', disk()), true);
  assert.equal(f.isEcho('/srv/vm1/a/b', disk({ mode: 0o100600, ctime: 2000 })), true, 'mode is not in the event');
  assert.equal(f.isEcho('/srv/vm1/a/b', disk({ mtime: 1000.5 + 0.0004 })), true, 'sub-microsecond rounding');
  assert.equal(f.isEcho('/srv/vm1/a/b', disk({ size: 11 })), false);
  assert.equal(f.isEcho('/srv/vm1/a/b', disk({ mtime: 1001 })), false);
  assert.equal(f.isEcho('/srv/vm1/a/b', disk({ ino: 8 })), false);
  assert.equal(f.isEcho('/srv/vm1/a/b', null), false);
  assert.equal(f.isEcho('/srv/vm1/a/bc', disk()), false, 'another name');
  assert.equal(f.isEcho('/srv/vm2/a/b', disk()), false, 'another root');
});

test('deletions expect absence; directories are matched by inode alone', () => {
  const f = new EchoFilter({ windowMs: 10_000, maxNotes: 100 });
  f.note(ROOT, ev('deleted', 'gone'));
  assert.equal(f.isEcho('/srv/vm1/gone', null), true);
  assert.equal(f.isEcho('/srv/vm1/gone', disk()), false, 'made again since');
  f.note(ROOT, ev('dirCreated', 'd', { dir: true, size: 4096, mtime: 1 }));
  assert.equal(f.isEcho('/srv/vm1/d', disk({ dir: true, size: 8192, mtime: 2 })), true, 'entries added since');
  assert.equal(f.isEcho('/srv/vm1/d', disk({ dir: false })), false);
});

test('notes expire after the window', async () => {
  const f = new EchoFilter({ windowMs: 30, maxNotes: 100 });
  f.note(ROOT, ev('created', 'x'));
  assert.equal(f.isEcho('/srv/vm1/x', disk()), true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(f.isEcho('/srv/vm1/x', disk()), false);
  f.note(ROOT, ev('created', 'y'));
  assert.equal(f.size, 1, 'expired notes are swept when new ones come');
});

test('maxNotes forgets the oldest first', () => {
  const f = new EchoFilter({ windowMs: 10_000, maxNotes: 2 });
  f.note(ROOT, ev('created', 'one'));
  f.note(ROOT, ev('created', 'two'));
  f.note(ROOT, ev('created', 'one')); // noted again: now the newest
  f.note(ROOT, ev('created', 'three'));
  assert.equal(f.size, 2);
  assert.equal(f.isEcho('/srv/vm1/two', disk()), false);
  assert.equal(f.isEcho('/srv/vm1/one', disk()), true);
  assert.equal(f.isEcho('/srv/vm1/three', disk()), true);
});

test('a renamed directory covers its contents: absent under the old name, moved ones under the new', () => {
  const f = new EchoFilter({ windowMs: 10_000, maxNotes: 100 });
  f.note(ROOT, ev('created', 'd/inner')); // older than the rename: the rename decides for it
  f.note(ROOT, ev('renamed', 'e', { oldPath: 'd', dir: true, time: 5000 }));
  assert.equal(f.isEcho('/srv/vm1/d', null), true);
  assert.equal(f.isEcho('/srv/vm1/d/inner', null), true);
  assert.equal(f.isEcho('/srv/vm1/d/inner', disk()), false);
  assert.equal(f.isEcho('/srv/vm1/e/inner', disk({ ctime: 4999 })), true, 'moved: older than the rename');
  assert.equal(f.isEcho('/srv/vm1/e/new', disk({ ctime: 5001 })), false, 'made after the rename');
  assert.equal(f.isEcho('/srv/vm1/de/x', null), false, 'prefix d is not d/');
  f.note(ROOT, ev('created', 'e/later', { ino: 9 })); // newer than the rename: its own note decides
  assert.equal(f.isEcho('/srv/vm1/e/later', disk({ ino: 9, ctime: 9999 })), true);
  f.note(ROOT, ev('renamed', 'f', { oldPath: 'e', dir: true, time: 6000 }));
  assert.equal(f.isEcho('/srv/vm1/e/inner', null), true, 'the newest rename wins');
  assert.equal(f.isEcho('/srv/vm1/f/inner', disk({ ctime: 4999 })), true);
});

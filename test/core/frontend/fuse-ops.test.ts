// The pure parts of the FUSE op table: errno mapping and the u32 squeeze of statfs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DisconnectedError, ErrnoError, errno } from '../../../core/errors.ts';
import { fuseErrno, toFuseStatfs } from '../../../core/frontend/fuse-ops.ts';
import { StatFs } from '../../../core/frontend/stats.ts';
import type { LogLevel } from '../../../core/util/log.ts';

function recorder() {
  const lines: Array<{ level: LogLevel; msg: string; fields?: Record<string, unknown> }> = [];
  return { lines, log: (level: LogLevel, msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, fields }) };
}

test('fuseErrno: errno errors pass through, a lost dom0 is EIO, anything else is EIO and a log line', () => {
  const logger = recorder();
  assert.equal(fuseErrno(new ErrnoError(errno('ENOTEMPTY'), 'RMDIR', 'd'), 'rmdir', '/d', logger), -errno('ENOTEMPTY'));
  assert.equal(fuseErrno(new DisconnectedError('gone'), 'read', '/f', logger), -errno('EIO'));
  assert.equal(logger.lines.length, 0, 'expected failures are not logged');
  assert.equal(fuseErrno(new TypeError('bug'), 'write', '/f', logger), -errno('EIO'));
  assert.equal(fuseErrno('a string', 'write', '/f', logger), -errno('EIO'));
  assert.equal(logger.lines.length, 2);
  assert.equal(logger.lines[0]?.level, 'error');
  assert.equal(logger.lines[0]?.fields?.op, 'write');
  assert.match(String(logger.lines[0]?.fields?.error), /TypeError: bug/);
});

const statfs = (o: Partial<Record<'blocks' | 'bfree' | 'bavail' | 'files' | 'ffree' | 'bsize' | 'frsize', number>>) =>
  new StatFs({ blocks: 1000, bfree: 500, bavail: 400, files: 100, ffree: 50, bsize: 4096, namelen: 255, frsize: 4096, ...o });

test('toFuseStatfs: small filesystems pass unchanged', () => {
  assert.deepEqual(toFuseStatfs(statfs({})), {
    bsize: 4096, frsize: 4096, blocks: 1000, bfree: 500, bavail: 400, files: 100, ffree: 50, favail: 50, fsid: 0,
    flag: 0, namemax: 255,
  });
});

test('toFuseStatfs: block counts past 2^32 are scaled into larger fragments, sizes kept; inode counts saturate', () => {
  const blocks = 2 ** 34 + 12345; // 64 TiB of 4 KiB blocks
  const s = toFuseStatfs(statfs({ blocks, bfree: 2 ** 33, bavail: 2 ** 32 + 5, files: 2 ** 40, ffree: 2 ** 36 }));
  assert.equal(s.frsize, 4096 * 8);
  assert.ok(s.blocks <= 0xffff_ffff);
  assert.ok(Math.abs(s.blocks * s.frsize - blocks * 4096) < s.frsize, 'total size kept to one fragment');
  assert.equal(s.bfree * s.frsize, 2 ** 33 * 4096);
  assert.equal(s.bsize, 4096);
  assert.equal(s.files, 0xffff_ffff);
  assert.equal(s.ffree, 0xffff_ffff);
  // frsize 0 (some filesystems) falls back to bsize.
  assert.equal(toFuseStatfs(statfs({ frsize: 0 })).frsize, 4096);
});

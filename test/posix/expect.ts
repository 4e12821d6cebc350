// Assertions and small tools shared by the POSIX cases.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp, { type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';

/** `p` must reject with a Node system error whose code is `code` ('ENOENT'). */
export async function rejectsWith(p: Promise<unknown>, code: string, what = ''): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Error, `expected ${code}${what && ` (${what})`}, got ${String(err)}`);
    assert.equal((err as NodeJS.ErrnoException).code, code, `${what}: ${err.message}`);
    return true;
  });
}

const run = promisify(execFile);

/** Run a command (never a shell) and return its stdout; rejects on a non-zero exit, with stderr in the error. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args, { encoding: 'utf8', timeout: 30_000 })).stdout;
}

/** Run a command expected to fail; resolves with its stderr. */
export async function shFails(cmd: string, args: string[]): Promise<string> {
  try {
    await run(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
  return assert.fail(`${cmd} ${args.join(' ')} succeeded`);
}

/** A Python one-liner (python3 is a build dependency), for calls Node has no API for: xattr flags and sizes. */
export function py(code: string, ...args: string[]): Promise<string> {
  return sh('python3', ['-c', code, ...args]);
}

/**
 * Open `p`, run `fn` on the handle, and close it whatever happens. A FileHandle left to the garbage collector is
 * closed then, and if its mount is gone by that time the failed close is an uncaught error that ends the run.
 */
export async function withFile<T>(
  p: string, flags: string | number, fn: (h: FileHandle) => Promise<T>, mode?: number,
): Promise<T> {
  const h = await fsp.open(p, flags, mode);
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

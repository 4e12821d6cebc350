// Shared pieces of the end-to-end tests: unique names, polling instead of sleeping, a LIFO cleanup scope, a dom0
// whose export directories exist before any guest connects, and assertion predicates for the error tree.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DisconnectedError, ErrnoError, type errno } from '../../core/errors.ts';
import { Guest, type GuestOptions } from '../../core/frontend/guest.ts';
import type { Transport } from '../../core/frontend/transport.ts';
import { type ResponseHeader, decodeResponse } from '../../core/protocol/decode.ts';
import { type RequestSpec, encodeRequest } from '../../core/protocol/encode.ts';
import { Dom0 } from './dom0.ts';

let counter = 0;

/** A name no other test in this run (or any parallel run) uses: safe as a domain or a file name. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export { waitFor } from './wait.ts';

/** Cleanup actions run in reverse order of registration; every one runs, and the first failure is rethrown. */
export class Scope {
  readonly #actions: Array<() => unknown> = [];

  defer(fn: () => unknown): void {
    this.#actions.push(fn);
  }

  async close(): Promise<void> {
    let first: unknown = null;
    for (const fn of this.#actions.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== null) throw first;
  }
}

type ExportSpec = string | { path?: unknown };

// Every export path the config names, relative ones resolved against `dir` as the server resolves them.
function exportPaths(config: Record<string, unknown>, dir: string): string[] {
  const specs: ExportSpec[] = [];
  const shared = config.exports as Record<string, ExportSpec> | undefined;
  if (shared) specs.push(...Object.values(shared));
  for (const g of (config.guests as Array<{ exports?: ExportSpec[] }> | undefined) ?? []) specs.push(...(g.exports ?? []));
  return specs.flatMap((e) => (typeof e === 'object' && typeof e.path === 'string' ? [path.resolve(dir, e.path)] : []));
}

/** Starts a real dom0 server process and creates every export directory its config names. */
export async function startDom0(config: Record<string, unknown>): Promise<Dom0> {
  const dom0 = await Dom0.start({ config });
  for (const p of exportPaths(config, dom0.dir)) fs.mkdirSync(p, { recursive: true });
  return dom0;
}

/**
 * Runs `fn` against a fresh dom0 and a cleanup scope; the scope closes first (guests), then dom0 is removed. A
 * failure of `fn` wins over a failure of the cleanup it may have caused.
 */
export async function withDom0<T>(
  config: Record<string, unknown>, fn: (dom0: Dom0, scope: Scope) => Promise<T>,
): Promise<T> {
  const dom0 = await startDom0(config);
  const scope = new Scope();
  scope.defer(() => dom0.cleanup());
  let result: T;
  try {
    result = await fn(dom0, scope);
  } catch (err) {
    await scope.close().catch(() => {});
    throw err;
  }
  await scope.close();
  return result;
}

/** Connects a guest to `dom0` and registers its close() with `scope`. */
export async function connectGuest(
  dom0: Dom0, scope: Scope, opts: Omit<GuestOptions, 'controlPath'>,
): Promise<Guest> {
  const guest = await Guest.connect({ controlPath: dom0.controlPath, ...opts });
  scope.defer(() => guest.close());
  return guest;
}

/** A connection attempt that must fail: resolves with its error. A guest that did connect is closed first. */
export async function connectRefused(dom0: Dom0, opts: Omit<GuestOptions, 'controlPath'>): Promise<unknown> {
  let guest: Guest;
  try {
    guest = await Guest.connect({ controlPath: dom0.controlPath, ...opts });
  } catch (err) {
    return err;
  }
  await guest.close();
  return assert.fail(`${opts.domain} was let in`);
}

/** Host path inside dom0's directory. */
export function hostPath(dom0: Dom0, ...parts: string[]): string {
  return path.join(dom0.dir, ...parts);
}

/** Descriptors a process holds open, from /proc. */
export function openFds(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).map((fd) => {
    try {
      return `${fd} -> ${fs.readlinkSync(path.join(dir, fd))}`;
    } catch {
      return `${fd} -> (gone)`;
    }
  });
}

/** The dom0 process's PID, asserting it is running. */
export function livePid(dom0: Dom0): number {
  const pid = dom0.pid;
  assert.ok(pid !== undefined, 'dom0 is not running');
  process.kill(pid, 0);
  return pid;
}

/** For assert.rejects: an ErrnoError with this errno name. */
export function errnoIs(name: Parameters<typeof errno>[0]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ErrnoError, `expected ErrnoError ${name}, got ${String(err)}`);
    assert.equal(err.errnoName, name, `expected ${name}, got ${err.message}`);
    return true;
  };
}

/** For assert.rejects: a DisconnectedError. */
export function isDisconnected(err: unknown): boolean {
  assert.ok(err instanceof DisconnectedError, `expected DisconnectedError, got ${String(err)}`);
  assert.equal(err.code, 'XENFS_ERR_DISCONNECTED');
  return true;
}

/** The outcome of a call as data, so whole scripts of calls can be compared: the value, or the errno name. */
export async function outcome<T>(p: Promise<T>): Promise<T | { error: string }> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ErrnoError) return { error: err.errnoName };
    throw err;
  }
}

/**
 * One request straight onto a guest's transport, bypassing GuestFs (no path clamping, no FORGET): what a
 * hostile guest can send. `patch` may rewrite the encoded slot first, for what the encoder refuses to build.
 */
export async function rawCall(
  transport: Transport, spec: RequestSpec, patch?: (slot: Buffer) => void,
): Promise<ResponseHeader & { data: Buffer | null }> {
  const frame = encodeRequest(spec);
  patch?.(frame.slot);
  const reply = await transport.call({ slot: frame.slot, payload: frame.payload, outLen: frame.outLen });
  return { ...decodeResponse(reply.slot), data: reply.data };
}

// Name and path rules of docs/protocol.md, checked on the client before anything is sent (the server checks
// again: it cannot trust us). Each validator returns the UTF-8 bytes that go on the wire, so a string is
// encoded exactly once.
import { ErrnoError, errno } from '../errors.ts';
import { MAX_NAME, MAX_PATH } from './layout.ts';

/** A name or path as callers give it: a string (encoded as UTF-8) or raw bytes. */
export type WireString = string | Uint8Array;

const SLASH = 0x2f;
const DOT = 0x2e;

function toBytes(value: WireString): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function display(value: WireString): string {
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
}

/**
 * A directory entry name (and an xattr name: the server applies the same rule to both): 1..255 bytes, no NUL,
 * no '/', not '.' or '..'. Throws ErrnoError EINVAL or ENAMETOOLONG (op names the operation, for the message).
 */
export function validateName(name: WireString, op: string): Buffer {
  const bytes = toBytes(name);
  const fail = (code: 'EINVAL' | 'ENAMETOOLONG'): never => {
    throw new ErrnoError(errno(code), op, display(name));
  };
  if (bytes.length === 0) fail('EINVAL');
  if (bytes.length > MAX_NAME) fail('ENAMETOOLONG');
  if (bytes.includes(0) || bytes.includes(SLASH)) fail('EINVAL');
  if (bytes[0] === DOT && (bytes.length === 1 || (bytes.length === 2 && bytes[1] === DOT))) fail('EINVAL');
  return bytes;
}

/**
 * A WALK path: relative (no leading '/'), 1..4096 bytes, no NUL, every component at most 255 bytes.
 * Throws ErrnoError EINVAL or ENAMETOOLONG.
 */
export function validatePath(path: WireString, op: string): Buffer {
  const bytes = toBytes(path);
  const fail = (code: 'EINVAL' | 'ENAMETOOLONG'): never => {
    throw new ErrnoError(errno(code), op, display(path));
  };
  if (bytes.length === 0 || bytes[0] === SLASH) fail('EINVAL');
  if (bytes.length > MAX_PATH) fail('ENAMETOOLONG');
  if (bytes.includes(0)) fail('EINVAL');
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === SLASH) {
      if (i - start > MAX_NAME) fail('ENAMETOOLONG');
      start = i + 1;
    }
  }
  return bytes;
}

/**
 * A symlink target: 1..4095 bytes (PATH_MAX counts the NUL Linux stores after it), no NUL. It is text the
 * server stores, not a path it resolves, so components are not checked. Empty is ENOENT, as symlink(2) says.
 */
export function validateTarget(target: WireString, op: string): Buffer {
  const bytes = toBytes(target);
  if (bytes.length === 0) throw new ErrnoError(errno('ENOENT'), op, display(target));
  if (bytes.length >= MAX_PATH) throw new ErrnoError(errno('ENAMETOOLONG'), op, display(target));
  if (bytes.includes(0)) throw new ErrnoError(errno('EINVAL'), op, display(target));
  return bytes;
}

/**
 * Split a caller's path into components relative to the export root: leading, trailing and repeated '/' and
 * '.' components are dropped ('' and '/' are the root, []). '..' is kept: the server resolves it, confined to
 * the export, so the client does not have to know whether a component is a symlink.
 */
export function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

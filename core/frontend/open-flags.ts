// fs/promises-style open flags ('r', 'w+', 'ax', …) to the Linux O_ bits OPEN and CREATE carry.
import { ErrnoError, errno } from '../errors.ts';
import { OpenFlag } from '../protocol/opcodes.ts';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC } = OpenFlag;

// The same table as Node's stringToFlags (lib/internal/fs/utils.js).
const FLAGS: Readonly<Record<string, number>> = {
  'r': O_RDONLY,
  'rs': O_RDONLY | O_SYNC,
  'sr': O_RDONLY | O_SYNC,
  'r+': O_RDWR,
  'rs+': O_RDWR | O_SYNC,
  'sr+': O_RDWR | O_SYNC,
  'w': O_TRUNC | O_CREAT | O_WRONLY,
  'wx': O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'xw': O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR,
  'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'a': O_APPEND | O_CREAT | O_WRONLY,
  'ax': O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  'xa': O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  'as': O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'sa': O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR,
  'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

/** Open flags as a number; an unknown string or a non-u32 number is EINVAL, as open(2) would answer. */
export function parseOpenFlags(flags: string | number, path: string): number {
  const value = typeof flags === 'number' ? flags : FLAGS[flags];
  if (value === undefined || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new ErrnoError(errno('EINVAL'), 'OPEN', path, { syscall: 'open' });
  }
  return value;
}

export function isWritable(flags: number): boolean {
  return (flags & OpenFlag.O_ACCMODE) !== O_RDONLY;
}

export function isReadable(flags: number): boolean {
  return (flags & OpenFlag.O_ACCMODE) !== O_WRONLY;
}

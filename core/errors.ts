// The error tree every XenFS module throws from. Each class has a stable `code` (never reworded: callers and
// the dashboard match on it) registered in ERROR_CODES and documented in docs/errors.md; a test keeps the
// three in step. Filesystem failures are ErrnoError; malformed peer data is ProtocolError (two tiers of
// failure: the first is an answer, the second ends the connection).
import { constants as osConstants } from 'node:os';

/** Every code a XenfsError may carry, with its one-line meaning (the source of docs/errors.md). */
export const ERROR_CODES = {
  XENFS_ERR_INTERNAL: 'An invariant inside XenFS was broken; a bug, never caused by a peer.',
  XENFS_ERR_ERRNO: 'A filesystem operation failed with a Linux errno (errno, errnoName, op, path).',
  XENFS_ERR_PROTOCOL: 'The peer sent malformed data; the connection to it is closed.',
  XENFS_ERR_DISCONNECTED: 'The connection closed before the operation completed.',
  XENFS_ERR_LIMIT: 'A named, configurable limit was exceeded (limit).',
  XENFS_ERR_CONFIG: 'A configuration value is missing or invalid (file, key, line).',
  XENFS_ERR_SANDBOX: 'A sandboxed guest could not be set up (namespaces, its root, or its workload).',
  XENFS_ERR_UNSUPPORTED: 'The running kernel lacks what a requested feature needs (FUSE passthrough for the native front end).',
  XENFS_ERR_EVENT_LOG: 'The change-event log is damaged or cannot be read (file, offset).',
  XENFS_ERR_PROCESS: 'A process XenFS starts and owns (the private redis-server) could not start or stop (program, logTail).',
  XENFS_ERR_BAD_EVENT: 'A change event or a queued batch of them is malformed; a queued one fails at once, without retry (at).',
  XENFS_ERR_EVENTS_FAILED: "A service's handler failed events of a batch; each failure names the event (failures).",
} as const;

export type XenfsErrorCode = keyof typeof ERROR_CODES;

/** Base of every XenFS error. `code` is stable across releases; `message` is for humans. */
export class XenfsError extends Error {
  readonly code: XenfsErrorCode;

  constructor(code: XenfsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

// os.constants.errno maps names to numbers; invert it once. Where Linux has two names for one number, the
// first one POSIX lists wins so messages match strerror's usual spelling.
const PREFERRED_NAMES = new Set(['EAGAIN', 'EOPNOTSUPP']);
const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) {
  if (!ERRNO_NAMES.has(num) || PREFERRED_NAMES.has(name)) ERRNO_NAMES.set(num, name);
}

// Descriptions for the errnos a filesystem client actually meets; others fall back to the name alone.
const ERRNO_DESCRIPTIONS: Readonly<Record<string, string>> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EIO: 'i/o error',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'not enough memory',
  EACCES: 'permission denied',
  EBUSY: 'resource busy or locked',
  EEXIST: 'file already exists',
  EXDEV: 'cross-device link not permitted',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  EINVAL: 'invalid argument',
  ENFILE: 'file table overflow',
  EMFILE: 'too many open files',
  EFBIG: 'file too large',
  ENOSPC: 'no space left on device',
  ESPIPE: 'invalid seek',
  EROFS: 'read-only file system',
  EMLINK: 'too many links',
  ERANGE: 'result too large',
  E2BIG: 'argument list too long',
  ENAMETOOLONG: 'name too long',
  ENOSYS: 'function not implemented',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many symbolic links encountered',
  ENODATA: 'no data available',
  EOPNOTSUPP: 'operation not supported',
  ENOTSUP: 'operation not supported',
  EDQUOT: 'disk quota exceeded',
  ESTALE: 'stale file handle',
  ETIMEDOUT: 'connection timed out',
};

/** The symbolic name of a positive errno ('ENOENT'), or 'EUNKNOWN' if this platform has none for it. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? 'EUNKNOWN';
}

/** The positive errno for a symbolic name, or undefined if the platform does not define it. */
export function errnoNumber(name: string): number | undefined {
  const table: Readonly<Record<string, number | undefined>> = osConstants.errno;
  return table[name];
}

/** Positive errno for a name the platform is known to define; for constants in our own code. */
export function errno(name: keyof typeof osConstants.errno): number {
  return osConstants.errno[name];
}

export interface ErrnoErrorOptions extends ErrorOptions {
  /** The client call that failed ('stat', 'open'); defaults to `op`. Used in the message, as Node does. */
  syscall?: string;
  /** A second path (rename's destination, link's new name). */
  dest?: string;
}

/**
 * A filesystem operation failed: the peer answered `-errno`, or the client refused the arguments before
 * sending (EINVAL, ENAMETOOLONG). Message: `ENOENT: no such file or directory, stat 'a/b'`.
 */
export class ErrnoError extends XenfsError {
  /** Positive Linux errno. */
  readonly errno: number;
  /** Symbolic name, e.g. 'ENOENT' ('EUNKNOWN' when the platform has none). */
  readonly errnoName: string;
  /** Protocol operation that failed, e.g. 'WALK', 'READ' ('' when refused before any was chosen). */
  readonly op: string;
  /** Client call the caller made, e.g. 'stat'. */
  readonly syscall: string;
  readonly path: string | undefined;
  readonly dest: string | undefined;

  constructor(errnoValue: number, op: string, path?: string, options: ErrnoErrorOptions = {}) {
    const name = errnoName(errnoValue);
    const description = ERRNO_DESCRIPTIONS[name] ?? `error ${errnoValue}`;
    const syscall = options.syscall ?? op;
    let message = `${name}: ${description}, ${syscall}`;
    if (path !== undefined) message += ` '${path}'`;
    if (options.dest !== undefined) message += ` -> '${options.dest}'`;
    super('XENFS_ERR_ERRNO', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errno = errnoValue;
    this.errnoName = name;
    this.op = op;
    this.syscall = syscall;
    this.path = path;
    this.dest = options.dest;
  }
}

/**
 * The peer sent data that breaks the wire contract (docs/protocol.md). The connection it came on is no longer
 * trustworthy and is closed. `domain` names the peer when the receiver knows it (the guest, on the server).
 */
export class ProtocolError extends XenfsError {
  readonly domain: string | number | undefined;

  constructor(message: string, options: ErrorOptions & { domain?: string | number } = {}) {
    super('XENFS_ERR_PROTOCOL', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.domain = options.domain;
  }
}

/** The connection ended (peer closed, socket error, or local close) before the operation completed. */
export class DisconnectedError extends XenfsError {
  constructor(message = 'connection closed', options?: ErrorOptions) {
    super('XENFS_ERR_DISCONNECTED', message, options);
  }
}

/** A named limit (the config key, e.g. 'maxInFlight') was exceeded. */
export class LimitError extends XenfsError {
  readonly limit: string;

  constructor(limit: string, message: string, options?: ErrorOptions) {
    super('XENFS_ERR_LIMIT', `${limit}: ${message}`, options);
    this.limit = limit;
  }
}

/**
 * A configuration value is missing or invalid; `file` and `key` say where, and `line` (1-based) where the file
 * gives one. Message: `config/xenfs.yaml: guests[0].limits.maxHandles (line 14): must be an integer in 4..1048576`.
 */
export class ConfigError extends XenfsError {
  readonly file: string;
  readonly key: string;
  readonly line: number | undefined;

  constructor(file: string, key: string, message: string, options: ErrorOptions & { line?: number } = {}) {
    const where = options.line === undefined ? key : `${key} (line ${options.line})`;
    super('XENFS_ERR_CONFIG', `${file}: ${where}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.file = file;
    this.key = key;
    this.line = options.line;
  }
}

/** The change-event log cannot be read at `file`, byte `offset`: damaged by the disk, or edited by hand. */
export class EventLogError extends XenfsError {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, message: string, options?: ErrorOptions) {
    super('XENFS_ERR_EVENT_LOG', `${file} at byte ${offset}: ${message}`, options);
    this.file = file;
    this.offset = offset;
  }
}

/**
 * A process XenFS starts and owns (the private redis-server) could not be started or stopped. `logTail` holds the
 * last lines of its log, where the process itself says why.
 */
export class ProcessError extends XenfsError {
  /** The program, as it was (or would have been) executed. */
  readonly program: string;
  readonly logTail: string;

  constructor(program: string, message: string, options: ErrorOptions & { logTail?: string } = {}) {
    const logTail = options.logTail ?? '';
    super('XENFS_ERR_PROCESS', logTail === '' ? message : `${message}\n--- end of its log ---\n${logTail}`,
      options.cause === undefined ? undefined : { cause: options.cause });
    this.program = program;
    this.logTail = logTail;
  }
}

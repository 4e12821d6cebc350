// Structured log lines (one JSON object per line on stderr): what an administrator greps, and what tests read.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
}

export const stderrLogger: Logger = {
  log(level, msg, fields = {}) {
    process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level, msg, ...fields })}\n`);
  },
};

export const silentLogger: Logger = { log() {} };

/** The pino methods a Logger forwards to (pino's Logger has them all). */
export interface PinoLike {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** core's Logger over a pino logger: what `xenfs up` hands the server and the event flow, so all write one stream. */
export function fromPino(p: PinoLike): Logger {
  return { log: (level, msg, fields = {}) => p[level](fields, msg) };
}

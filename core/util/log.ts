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

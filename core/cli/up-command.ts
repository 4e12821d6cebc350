// `xenfs up --config FILE`: starts dom0 (platform.ts) in the foreground with structured logs (pino, one JSON
// object per line on stderr), answers `xenfs status` on its admin socket, and shuts down in order on SIGTERM or
// SIGINT. `xenfs status` and `xenfs worker` live here too: they read the same config.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../config/config.ts';
import { XenfsError } from '../errors.ts';
import { ServiceRuntime } from '../plugins/service-runtime.ts';
import { unavailableHooks } from '../plugins/unavailable-hooks.ts';
import { AdminSocket, adminGet } from './admin-socket.ts';
import { Platform, redisTarget } from './platform.ts';
import { formatFailed, formatStatus, type FailedReport, type PlatformStatus } from './platform-status.ts';

export const UP_USAGE = 'usage: xenfs up --config FILE';
export const STATUS_USAGE = 'usage: xenfs status --config FILE [--json] [--failed]';
export const WORKER_USAGE = 'usage: xenfs worker --service NAME [--service NAME...] --config FILE';

function parse<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(args: string[], usage: string, options: T) {
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (err) {
    throw new XenfsError('XENFS_ERR_CONFIG', `${(err as Error).message}\n${usage}`);
  }
}

function configFile(v: unknown, usage: string): string {
  if (typeof v !== 'string') throw new XenfsError('XENFS_ERR_CONFIG', usage);
  return v;
}

/** Runs until a signal, then stops in order; exits 0 when everything stopped cleanly. */
function onSignals(stop: (sig: string) => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    stop(sig).then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

export async function upCommand(args: string[]): Promise<void> {
  const file = configFile(parse(args, UP_USAGE, { config: { type: 'string' } }).config, UP_USAGE);
  const config = loadConfig(file);
  const logger = pino({ base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const platform = new Platform(config, { logger });
  await platform.start();
  const admin = await AdminSocket.listen(config.stateDir, {
    '/status': () => platform.status(),
    '/failed': () => platform.failed(),
  });
  onSignals(async (sig) => {
    logger.info({ signal: sig }, 'xenfs stopping');
    await admin.close();
    await platform.stop();
  });
  const ready = { type: 'ready', admin: admin.path, control: platform.server?.controlPath, redis: platform.redisTarget };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  if (process.send) process.send(ready);
}

export async function statusCommand(args: string[]): Promise<void> {
  const values = parse(args, STATUS_USAGE, { config: { type: 'string' }, json: { type: 'boolean' }, failed: { type: 'boolean' } });
  const file = configFile(values.config, STATUS_USAGE);
  const config = loadConfig(file);
  if (values.failed) {
    const failed = (await adminGet(config.stateDir, '/failed')) as FailedReport;
    process.stdout.write(values.json ? `${JSON.stringify(failed)}\n` : formatFailed(failed));
    return;
  }
  const status = (await adminGet(config.stateDir, '/status')) as PlatformStatus;
  process.stdout.write(values.json ? `${JSON.stringify(status)}\n` : formatStatus(status));
}

/** Runs services' workers against the configured (external) Redis: more hands for a busy queue, on any host. */
export async function workerCommand(args: string[]): Promise<void> {
  const values = parse(args, WORKER_USAGE, { config: { type: 'string' }, service: { type: 'string', multiple: true } });
  const file = configFile(values.config, WORKER_USAGE);
  const services = values.service ?? [];
  if (services.length === 0) throw new XenfsError('XENFS_ERR_CONFIG', WORKER_USAGE);
  const config = loadConfig(file);
  const target = redisTarget(config.redis);
  if (!target) {
    throw new XenfsError('XENFS_ERR_CONFIG', `${file}: redis: a worker on its own needs an external Redis (path, host or cluster); the private one is xenfs up's alone`);
  }
  const logger = pino({ base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const runtime = new ServiceRuntime({ config, target, logger, only: services, ...unavailableHooks() });
  await runtime.load();
  await runtime.start();
  onSignals(async (sig) => {
    logger.info({ signal: sig }, 'xenfs worker stopping');
    await runtime.stop();
  });
  logger.info({ services }, 'xenfs worker running');
  process.stdout.write(`${JSON.stringify({ type: 'ready', services })}\n`);
}

// `xenfs` command line. Subcommands: `up --config FILE` runs dom0 with its event flow and services
// (up-command.ts), `status` and `worker` talk to or help a running one; `server --config FILE` runs the file
// server alone; `guest NAME --mount DIR` runs a guest's front end with its export mounted at DIR.
import { loadConfig } from '../config/config.ts';
import { XenfsError } from '../errors.ts';
import { XenfsServer } from '../server/server.ts';
import { stderrLogger } from '../util/log.ts';
import { GUEST_USAGE, guestCommand } from './guest-command.ts';
import { STATUS_USAGE, UP_USAGE, WORKER_USAGE, statusCommand, upCommand, workerCommand } from './up-command.ts';

const SERVER_USAGE = 'usage: xenfs server --config FILE';
const USAGE = [UP_USAGE, STATUS_USAGE, WORKER_USAGE, SERVER_USAGE, GUEST_USAGE].join('\n');

async function server(args: string[]): Promise<void> {
  const i = args.indexOf('--config');
  const file = i >= 0 ? args[i + 1] : undefined;
  if (!file) throw new XenfsError('XENFS_ERR_CONFIG', SERVER_USAGE);
  const srv = new XenfsServer(loadConfig(file), stderrLogger);
  srv.start();
  // Guests see Closing and their requests fail cleanly instead of hanging on a vanished dom0.
  const shutdown = (sig: string): void => {
    stderrLogger.log('info', 'dom0 server stopping', { signal: sig });
    void srv.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  if (process.send) process.send({ type: 'ready', tcpPort: srv.tcpPort, control: srv.controlPath });
}

const [cmd, ...rest] = process.argv.slice(2);
const commands: Record<string, (a: string[]) => Promise<void>> = {
  up: upCommand, status: statusCommand, worker: workerCommand, server, guest: guestCommand,
};
const run = cmd ? commands[cmd] : undefined;
if (!run) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
} else {
  run(rest).catch((err: unknown) => {
    process.stderr.write(`xenfs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof XenfsError && err.code === 'XENFS_ERR_CONFIG' ? 2 : 1);
  });
}

// `xenfs guest NAME --mount DIR`: run a guest domain's front end in the foreground. It connects to dom0 as NAME,
// mounts one export at DIR through fuse-native, prints one JSON line {"type":"ready", ...} on stdout (and sends
// it over IPC when there is a channel), and serves the mount until SIGINT or SIGTERM, which unmount it and exit 0.
// While dom0 is away (restarting), calls on the mount wait up to --wait-ms for it, then fail with EIO; the
// connection comes back by itself and the same mount works again.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { XenfsError } from '../errors.ts';
import { MAX_NAME_CACHE_MS, type FuseCacheMode } from '../frontend/fuse-mount.ts';
import { DEFAULT_WAIT_MS, type GuestOptions } from '../frontend/guest.ts';
import { mountExport, type FrontendChoice, type MountedExport } from '../frontend/mount.ts';
import { buildRoot, enterNamespaces, guestIds, makeRootDir, runWorkload } from '../frontend/sandbox.ts';
import { closeFd } from '../xen/control-socket.ts';
import { probeFuseKernel } from '../xen/fuse-kernel.ts';
import { fileURLToPath } from 'node:url';
import { stderrLogger } from '../util/log.ts';

export const GUEST_USAGE = 'usage: xenfs guest NAME --mount DIR [--export NAME] [--control PATH] '
  + '[--secret-file FILE] [--wait-ms N] [--cache none|auto] [--name-cache-ms N] '
  + '[--frontend auto|native|fuse-native] [--no-passthrough] '
  + '[--sandbox [--workload-uid N] -- CMD [ARGS...]]'
  + '   (secret: --secret-file, or env XENFS_SECRET)';

const DEFAULT_CONTROL = '/var/lib/xenfs/control.sock';
// How long a clean shutdown may take before the process gives up on it and exits non-zero.
const SHUTDOWN_DEADLINE_MS = 10_000;

export interface GuestArgs {
  domain: string;
  mount: string;
  exportName: string | undefined;
  controlPath: string;
  secret: string | undefined;
  waitMs: number;
  /** --cache, when given; otherwise the mount follows dom0's configuration for this guest. */
  cache: FuseCacheMode | undefined;
  /** --name-cache-ms, when given (see FuseMountOptions.nameCacheMs). */
  nameCacheMs: number | undefined;
  /**
   * Which front end serves the mount. 'auto' (default): the native one when the kernel agrees to passthrough,
   * else fuse-native.
   */
  frontend: FrontendChoice;
  /** --no-passthrough: do not ask the kernel for passthrough (as on a kernel without it). */
  passthrough: boolean;
  /** Run `command` isolated as a VM would be (own namespaces, private root, unprivileged), mount inside. */
  sandbox: { command: string[]; uid: number; inside: boolean; root: string | undefined } | null;
}

function usage(problem: string): never {
  throw new XenfsError('XENFS_ERR_CONFIG', `${problem}\n${GUEST_USAGE}`);
}

/**
 * The command line, checked. The secret never comes from argv (every user can read argv in ps): it is the
 * first line of --secret-file, or $XENFS_SECRET, which is then removed from this process's environment.
 */
export function parseGuestArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): GuestArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        mount: { type: 'string' },
        export: { type: 'string' },
        control: { type: 'string' },
        'secret-file': { type: 'string' },
        'wait-ms': { type: 'string' },
        cache: { type: 'string' },
        'name-cache-ms': { type: 'string' },
        frontend: { type: 'string' },
        'no-passthrough': { type: 'boolean' },
        sandbox: { type: 'boolean' },
        'workload-uid': { type: 'string' },
        // Internal: set by the re-executed front end once it runs inside the sandbox's namespaces.
        'sandbox-inside': { type: 'boolean' },
        // Internal: the (empty) directory the outer process made for the sandbox root, and removes afterwards.
        'sandbox-root': { type: 'string' },
      },
    });
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  const [domain, ...extra] = positionals;
  if (domain === undefined) usage('exactly one guest NAME is needed');
  if (!values.sandbox && extra.length > 0) usage('exactly one guest NAME is needed (a command needs --sandbox)');
  if (values.sandbox && extra.length === 0) usage('--sandbox needs a command after --');
  const uidText = values['workload-uid'] ?? '65534';
  const workloadUid = /^\d+$/.test(uidText) ? Number(uidText) : NaN;
  if (!Number.isSafeInteger(workloadUid) || workloadUid <= 0 || workloadUid > 0xfffffffe) {
    usage(`--workload-uid must be a non-root uid, got '${uidText}'`);
  }
  if (values.mount === undefined) usage('--mount DIR is required');
  const waitText = values['wait-ms'];
  const waitMs = waitText === undefined ? DEFAULT_WAIT_MS : /^\d+$/.test(waitText) ? Number(waitText) : NaN;
  if (!Number.isSafeInteger(waitMs)) usage(`--wait-ms must be a whole number of ms >= 0, got '${waitText}'`);
  const cache = values.cache;
  if (cache !== undefined && cache !== 'none' && cache !== 'auto') usage(`--cache must be none or auto, got ${cache}`);
  const nameText = values['name-cache-ms'];
  const nameCacheMs = nameText === undefined ? undefined : /^\d+$/.test(nameText) ? Number(nameText) : NaN;
  if (nameCacheMs !== undefined && !(nameCacheMs <= MAX_NAME_CACHE_MS)) {
    usage(`--name-cache-ms must be a whole number of ms in 0..${MAX_NAME_CACHE_MS}, got '${nameText}'`);
  }
  const frontend = values.frontend ?? 'auto';
  if (frontend !== 'auto' && frontend !== 'native' && frontend !== 'fuse-native') {
    usage(`--frontend must be auto, native or fuse-native, got ${frontend}`);
  }
  let secret: string | undefined;
  const secretFile = values['secret-file'];
  if (secretFile !== undefined) {
    try {
      secret = fs.readFileSync(secretFile, 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      usage(`--secret-file ${secretFile} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    secret = env.XENFS_SECRET;
  }
  delete env.XENFS_SECRET;
  return {
    domain, mount: path.resolve(values.mount), exportName: values.export, controlPath: values.control ?? DEFAULT_CONTROL,
    secret: secret === '' ? undefined : secret, waitMs, cache, nameCacheMs, frontend,
    passthrough: values['no-passthrough'] !== true,
    sandbox: values.sandbox
      ? { command: extra, uid: workloadUid, inside: values['sandbox-inside'] === true, root: values['sandbox-root'] }
      : null,
  };
}

function connectOptions(args: GuestArgs): Omit<GuestOptions, 'takeOver'> {
  return {
    controlPath: args.controlPath, domain: args.domain, waitMs: args.waitMs,
    ...(args.secret === undefined ? {} : { secret: args.secret }),
  };
}

function mount(args: GuestArgs, dir: string, allowOther: boolean, fuseFd?: number): Promise<MountedExport> {
  return mountExport(connectOptions(args), dir, {
    exportName: args.exportName, cache: args.cache, nameCacheMs: args.nameCacheMs, allowOther,
    frontend: args.frontend, passthrough: args.passthrough, logger: stderrLogger, fuseFd,
  });
}

export async function guestCommand(argv: string[]): Promise<void> {
  const args = parseGuestArgs(argv);
  if (args.sandbox) return sandboxed(argv, args);
  const log = stderrLogger;
  const mounted = await mount(args, args.mount, false);
  const guest = mounted.guest;

  let stopping = false;
  const shutdown = (reason: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    log.log('info', 'guest front end stopping', { reason, domain: args.domain, mount: mounted.dir });
    setTimeout(() => {
      log.log('error', 'clean shutdown took too long; exiting', { deadlineMs: SHUTDOWN_DEADLINE_MS });
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    mounted.close()
      .then(() => process.exit(code), (err: unknown) => {
        log.log('error', 'unmount failed', { error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      });
  };
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  // Another connection of this domain took over: this one will never come back, so neither will the mount.
  guest.on('state', (state) => {
    if (state === 'Closed' && guest.superseded) shutdown('superseded by a newer connection of this domain', 1);
  });

  const ready = {
    type: 'ready', domain: args.domain, export: guest.exportRoot(args.exportName).name, mount: mounted.dir,
    cache: mounted.cache, frontend: mounted.frontend, passthrough: mounted.passthrough, pid: process.pid,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  process.send?.(ready);
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/**
 * argv without --secret-file: the secret goes inwards in the environment, and an unprivileged front end could
 * not read dom0's file anyway. Only what precedes the workload's `--` is looked at.
 */
function withoutSecretFile(argv: string[]): string[] {
  const end = argv.indexOf('--');
  const own = end < 0 ? argv : argv.slice(0, end);
  const out: string[] = [];
  for (let i = 0; i < own.length; i++) {
    const a = own[i] as string;
    if (a === '--secret-file') i++;
    else if (!a.startsWith('--secret-file=')) out.push(a);
  }
  return end < 0 ? out : [...out, ...argv.slice(end)];
}

/** Whether the kernel agrees to FUSE passthrough, asked with a mount on `emptyDir` (which it leaves empty). */
function passthroughOn(emptyDir: string): boolean {
  try {
    return probeFuseKernel(emptyDir).passthrough;
  } catch {
    return false;
  }
}

/**
 * `--sandbox`: first re-run this command inside new namespaces; there, build the workload's root, mount the
 * export into it, run the workload, and exit with its status once it is done and everything is unmounted.
 */
async function sandboxed(argv: string[], args: GuestArgs): Promise<void> {
  const box = args.sandbox as NonNullable<GuestArgs['sandbox']>;
  if (!box.inside) {
    // The secret was taken out of this environment when read; the inner front end needs it back.
    const env = args.secret === undefined ? process.env : { ...process.env, XENFS_SECRET: args.secret };
    // Made out here so it is removed out here, even when the guest inside is killed: its mounts go with its
    // namespace, and what is left in dom0's view is this empty directory.
    const rootDir = makeRootDir();
    let tmpDir: string | null = null;
    let code: number;
    try {
      // The native front end runs unprivileged, in a user namespace of its own; fuse-native (libfuse2 opens
      // /dev/fuse and mounts itself) keeps root in the sandbox's namespaces. The empty root directory is where the
      // kernel is asked which one it can be.
      const native = args.frontend === 'native' || (args.frontend === 'auto' && args.passthrough && passthroughOn(rootDir));
      const ids = native ? guestIds(args.domain) : undefined;
      // An unprivileged front end gets a temporary directory it may write (Node and tsx keep caches there), in
      // /tmp: $TMPDIR may be a directory only root can enter.
      if (ids) {
        tmpDir = fs.mkdtempSync('/tmp/xenfs-frontend-');
        fs.chownSync(tmpDir, ids.base, ids.base);
      }
      // Before argv, which ends with the workload's command line; a --frontend given there still wins.
      code = await enterNamespaces([process.execPath, ...process.execArgv, MAIN, 'guest', '--sandbox-inside',
        '--sandbox-root', rootDir, '--frontend', native ? 'native' : 'fuse-native', ...withoutSecretFile(argv)],
      tmpDir ? { ...env, TMPDIR: tmpDir } : env, ids);
    } finally {
      // The front end's own scratch space: nothing is ever mounted there.
      if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
      // rmdir, never a recursive removal: were anything mounted there in dom0's view, it must not be emptied.
      try {
        fs.rmdirSync(rootDir);
      } catch (err) {
        stderrLogger.log('warn', 'sandbox root left behind', { dir: rootDir, error: (err as Error).message });
      }
    }
    process.exit(code);
  }
  // SIGINT/SIGTERM (passed on by the outer process) stop the workload; the mount and the connection then go as
  // after any other end of the workload. Handled from the start: as PID 1 of its namespace this process
  // would otherwise ignore them.
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    stderrLogger.log('info', 'sandboxed guest stopping', { reason: sig, domain: args.domain });
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Set by xenfs-enter: a /dev/fuse opened in this user namespace, the only kind the kernel mounts here.
  const fuseFd = process.env.XENFS_FUSE_FD === undefined ? undefined : Number(process.env.XENFS_FUSE_FD);
  delete process.env.XENFS_FUSE_FD;
  const root = buildRoot(args.mount, box.root);
  let code = 1;
  try {
    const mounted = await mount(args, root.mountpoint, true, fuseFd);
    if (fuseFd !== undefined) closeFd(fuseFd);
    try {
      code = await runWorkload(root.root, {
        command: box.command, uid: box.uid, gid: box.uid, cwd: args.mount, stop: stop.signal,
      });
    } finally {
      await mounted.close();
    }
  } finally {
    root.cleanup();
  }
  process.exit(code);
}

// `npm run demo` (as root): XenFS end to end, as an administrator would watch it. A private dom0 server serves two
// guests, alice and bob, that share one read-write export; both run sandboxed at once through the real CLI
// (`xenfs guest NAME --mount /data --sandbox -- sh -c SCRIPT`) and talk through files in it, while each shows what
// it can see of the host. A third sandboxed run mounts a read-only export. Every expectation is checked and the
// demo exits 1 if one fails; everything it starts is stopped by PID and removed by path, and no FUSE mount or
// guest process may outlive it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Dom0 } from '../test/helpers/dom0.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'core', 'cli', 'main.ts');
const MOUNT = '/data';
/** How long a workload polls for the other guest's file. */
const POLL_SECONDS = 30;
/** How long one sandboxed guest may run before the demo kills it (it polls for at most POLL_SECONDS). */
const GUEST_DEADLINE_MS = 90_000;
const ALICE_NOTE = 'hello bob, alice here';
const BOB_REPLY = 'hi alice, got your note';
const DOCS_TEXT = 'XenFS handbook: the docs export is read-only';
/** What a sandbox root holds (core/frontend/sandbox.ts): system directories, dev, proc, tmp and the mount. */
const SANDBOX_ROOT = new Set(['usr', 'bin', 'sbin', 'lib', 'lib64', 'dev', 'proc', 'tmp', MOUNT.slice(1)]);

const started = Date.now();
const failures: string[] = [];

/** Prints one transcript line, stamped with seconds since the demo started (or since then to `at`, in ms). */
function say(who: string, line: string, at = Date.now()): void {
  const t = (Math.max(0, at - started) / 1000).toFixed(1).padStart(5);
  console.log(`${t}s [${who}] ${line}`);
}

function check(ok: boolean, what: string): void {
  say('check', `${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

// --- the workloads (run by /bin/sh inside the sandbox, as uid 65534, cwd /data) -----------------------------

/** Prints `key: value` lines about what the guest sees of dom0; the demo reads them back by key. */
function probeScript(port: number): string {
  return `
echo "uid: $(id -u)"
echo "ls /: $(ls / | paste -sd ' ')"
if out=$(cat /etc/passwd 2>&1); then echo "cat /etc/passwd: readable"; else echo "cat /etc/passwd: fails ($out)"; fi
if out=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>&1); then echo "tcp 127.0.0.1:${port}: connected"
else echo "tcp 127.0.0.1:${port}: fails ($(echo "$out" | head -n 1))"; fi
echo "network: $(ip -br link 2>&1 | tr -s ' ' | cut -d ' ' -f 1,2 | paste -sd ',')"
`;
}

/** Waits for file $1 to appear, polling every 0.1 s for up to POLL_SECONDS; returns 1 if it never does. */
const WAIT_FOR = `
wait_for() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt ${POLL_SECONDS * 10} ] && return 1; sleep 0.1; done; }
`;

// Notes are written under a dot-name and renamed into place, so the reader never sees a half-written file.
function aliceScript(port: number): string {
  return `${WAIT_FOR}${probeScript(port)}
printf '%s\\n' '${ALICE_NOTE}' > ${MOUNT}/.note.tmp && mv ${MOUNT}/.note.tmp ${MOUNT}/from-alice.txt
echo "wrote ${MOUNT}/from-alice.txt: $(cat ${MOUNT}/from-alice.txt)"
echo "waiting for ${MOUNT}/from-bob.txt (up to ${POLL_SECONDS} s)"
if ! wait_for ${MOUNT}/from-bob.txt; then echo "read ${MOUNT}/from-bob.txt: nothing came"; exit 1; fi
echo "read ${MOUNT}/from-bob.txt: $(cat ${MOUNT}/from-bob.txt)"
`;
}

function bobScript(port: number): string {
  return `${WAIT_FOR}${probeScript(port)}
echo "waiting for ${MOUNT}/from-alice.txt (up to ${POLL_SECONDS} s)"
if ! wait_for ${MOUNT}/from-alice.txt; then echo "read ${MOUNT}/from-alice.txt: nothing came"; exit 1; fi
echo "read ${MOUNT}/from-alice.txt: $(cat ${MOUNT}/from-alice.txt)"
printf '%s\\n' '${BOB_REPLY}' > ${MOUNT}/.reply.tmp && mv ${MOUNT}/.reply.tmp ${MOUNT}/from-bob.txt
echo "wrote ${MOUNT}/from-bob.txt: $(cat ${MOUNT}/from-bob.txt)"
`;
}

const DOCS_SCRIPT = `
echo "ls ${MOUNT}: $(ls ${MOUNT} | paste -sd ' ')"
echo "read ${MOUNT}/handbook.txt: $(cat ${MOUNT}/handbook.txt)"
if out=$( (echo x > ${MOUNT}/new.txt) 2>&1 ); then echo "create ${MOUNT}/new.txt: succeeded"; else echo "create ${MOUNT}/new.txt: fails ($out)"; fi
if out=$( (echo x >> ${MOUNT}/handbook.txt) 2>&1 ); then echo "append ${MOUNT}/handbook.txt: succeeded"; else echo "append ${MOUNT}/handbook.txt: fails ($out)"; fi
`;

// --- running a sandboxed guest ---------------------------------------------------------------------------------

interface GuestRun {
  name: string;
  child: ChildProcess;
  /** The workload's `key: value` lines, by key. */
  said: Map<string, string>;
  stderr: string[];
  /** Resolves with the exit code (128 + signal number when killed) once the process and its pipes are closed. */
  done: Promise<number>;
}

const running = new Set<GuestRun>();

/** Where guests build their sandbox roots (TMPDIR): the demo's own directory, so it knows what is its to clean. */
let guestTmp = os.tmpdir();

function startGuest(dom0: Dom0, name: string, exportName: string, secretFile: string, script: string): GuestRun {
  const args = ['--import', 'tsx', MAIN, 'guest', name, '--mount', MOUNT, '--export', exportName,
    '--control', dom0.controlPath, '--secret-file', secretFile, '--sandbox', '--', 'sh', '-c', script];
  // Its own process group: `kill -9 -PID` then reaches the front end inside the namespaces too (see killGuest).
  const child = spawn(process.execPath, args, {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, TMPDIR: guestTmp },
  });
  const run: GuestRun = { name, child, said: new Map(), stderr: [], done: Promise.resolve(1) };
  readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    say(name, line);
    const at = line.indexOf(': ');
    if (at > 0) run.said.set(line.slice(0, at), line.slice(at + 2));
  });
  readline.createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => run.stderr.push(line));
  run.done = new Promise((resolve) => {
    child.once('error', (err) => run.stderr.push(`spawn failed: ${err.message}`));
    child.once('close', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
  running.add(run);
  say(name, `started (pid ${child.pid}): xenfs guest ${name} --mount ${MOUNT} --export ${exportName} --sandbox -- sh -c …`);
  return run;
}

/**
 * Stops a guest by its PID: SIGTERM, which the CLI passes to the front end inside the sandbox (it stops the
 * workload and unmounts); if that has not worked within a few seconds, SIGKILL of the guest's process group, which
 * ends the namespace's init and with it every process and mount of the guest.
 */
async function killGuest(run: GuestRun): Promise<void> {
  const pid = run.child.pid;
  const alive = (): boolean => run.child.exitCode === null && run.child.signalCode === null;
  if (pid !== undefined && alive()) {
    run.child.kill('SIGTERM');
    const gone = await Promise.race([run.done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
    if (!gone && alive()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  await run.done;
  running.delete(run);
}

/** Waits for a guest to exit by itself (killing it at the deadline); returns its exit code. */
async function finish(run: GuestRun): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), GUEST_DEADLINE_MS);
  });
  const outcome = await Promise.race([run.done, deadline]);
  clearTimeout(timer);
  if (outcome === 'late') {
    say(run.name, `still running after ${GUEST_DEADLINE_MS / 1000} s; killing it`);
    await killGuest(run);
  }
  running.delete(run);
  const code = await run.done;
  say(run.name, `exited with ${code}`);
  if (code !== 0) for (const l of run.stderr.slice(-15)) say(`${run.name} stderr`, l);
  return code;
}

// --- the host side ---------------------------------------------------------------------------------------------

/** FUSE lines of /proc/mounts. */
function fuseMounts(): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => /^\S+ \S+ fuse/.test(l));
}

function readOr(file: string, otherwise: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return otherwise;
  }
}

/** PIDs of live processes whose command line mentions `text` (the demo's private dom0 directory). */
function processesMentioning(text: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text) ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** A TCP port dom0 listens on: open to dom0's own processes, and the guests try to reach it. */
interface Probe {
  server: net.Server;
  port: number;
  /** Connections the server has accepted so far. */
  accepted: () => number;
}

async function listenOnLoopback(): Promise<Probe> {
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted++;
    sock.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, accepted: () => accepted };
}

async function hostCanConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.end();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Prints dom0's log lines from index `from` on, at the time dom0 logged them; returns the index to go on from. */
function showDom0Log(dom0: Dom0, from: number): number {
  const logs = dom0.logs();
  for (const l of logs.slice(from)) {
    const { t, msg, domain, reason, transport } = l;
    if (msg === undefined) continue;
    const extra = [domain, transport, reason].filter((x) => x !== undefined && x !== null).join(', ');
    say('dom0', `${String(msg)}${extra ? ` (${extra})` : ''}`, typeof t === 'string' ? Date.parse(t) : Date.now());
  }
  return logs.length;
}

/** Shows dom0's log as it is written, until the returned function is called. */
function followDom0Log(dom0: Dom0): () => void {
  let shown = showDom0Log(dom0, 0);
  const timer = setInterval(() => {
    shown = showDom0Log(dom0, shown);
  }, 50);
  return () => {
    clearInterval(timer);
    showDom0Log(dom0, shown);
  };
}

function describeFiles(dir: string): string {
  return fs.readdirSync(dir).sort().map((f) => {
    const st = fs.statSync(path.join(dir, f));
    return `${f} (uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`;
  }).join(', ');
}

// --- the demo --------------------------------------------------------------------------------------------------

function checkProbe(run: GuestRun, port: number): void {
  const s = (key: string): string => run.said.get(key) ?? '(not printed)';
  const n = run.name;
  check(s('uid') === '65534', `${n}'s workload runs as uid 65534`);
  const root = s('ls /').split(' ').filter((x) => x !== '');
  check(root.includes(MOUNT.slice(1)) && root.every((e) => SANDBOX_ROOT.has(e)),
    `${n} sees only the sandbox root: ${root.join(' ')}`);
  check(s('cat /etc/passwd').startsWith('fails'), `${n} cannot read dom0's /etc/passwd`);
  check(s(`tcp 127.0.0.1:${port}`).startsWith('fails'), `${n} cannot connect to dom0's 127.0.0.1:${port}`);
  check(s('network') === 'lo DOWN', `${n}'s network namespace has only a loopback, down`);
}

async function talk(dom0: Dom0, secretFiles: Record<string, string>, port: number): Promise<void> {
  console.log('\n== alice and bob, sandboxed at once, share /data (export "shared", read-write) ==');
  const alice = startGuest(dom0, 'alice', 'shared', secretFiles.alice as string, aliceScript(port));
  const bob = startGuest(dom0, 'bob', 'shared', secretFiles.bob as string, bobScript(port));
  const [a, b] = await Promise.all([finish(alice), finish(bob)]);
  check(a === 0 && b === 0, `both workloads exit 0 (alice ${a}, bob ${b})`);
  check(alice.said.get(`read ${MOUNT}/from-bob.txt`) === BOB_REPLY, "alice read bob's reply");
  check(bob.said.get(`read ${MOUNT}/from-alice.txt`) === ALICE_NOTE, "bob read alice's note");
  checkProbe(alice, port);
  checkProbe(bob, port);
  const shared = path.join(dom0.dir, 'shared');
  say('dom0', `${shared} now holds: ${describeFiles(shared)}`);
  check(readOr(path.join(shared, 'from-alice.txt'), '') === `${ALICE_NOTE}\n`
    && readOr(path.join(shared, 'from-bob.txt'), '') === `${BOB_REPLY}\n`,
  "both notes are on dom0's disk in the shared export");
}

async function readOnlyDocs(dom0: Dom0, secretFiles: Record<string, string>): Promise<void> {
  console.log('\n== alice mounts the read-only export "docs" ==');
  const run = startGuest(dom0, 'alice', 'docs', secretFiles.alice as string, DOCS_SCRIPT);
  const code = await finish(run);
  check(code === 0, `the docs workload exits 0 (${code})`);
  check(run.said.get(`read ${MOUNT}/handbook.txt`) === DOCS_TEXT, 'reading a file of docs works');
  for (const op of [`create ${MOUNT}/new.txt`, `append ${MOUNT}/handbook.txt`]) {
    const said = run.said.get(op) ?? '(not printed)';
    check(said.startsWith('fails') && said.includes('Read-only file system'), `${op} fails with "Read-only file system"`);
  }
  const docs = path.join(dom0.dir, 'docs');
  check(fs.readdirSync(docs).join(' ') === 'handbook.txt' && readOr(path.join(docs, 'handbook.txt'), '') === DOCS_TEXT,
    "docs on dom0's disk is unchanged");
}

/** Each guest's secret; the guest's front end reads it from a file of mode 0600. */
const dom0Secrets: Record<string, string> = {
  alice: randomBytes(16).toString('hex'),
  bob: randomBytes(16).toString('hex'),
};

function prepareExports(dom0: Dom0): Record<string, string> {
  const shared = path.join(dom0.dir, 'shared');
  fs.mkdirSync(shared);
  // Workloads run as uid 65534; dom0 acts as root for these guests, so the mode is what the guests are held to.
  fs.chmodSync(shared, 0o777);
  fs.mkdirSync(path.join(dom0.dir, 'docs'));
  fs.writeFileSync(path.join(dom0.dir, 'docs', 'handbook.txt'), DOCS_TEXT);
  const secretFiles: Record<string, string> = {};
  for (const name of ['alice', 'bob']) {
    fs.mkdirSync(path.join(dom0.dir, `${name}-home`));
    fs.writeFileSync(path.join(dom0.dir, `${name}-home`, 'private.txt'), `${name}'s own file\n`);
    const file = path.join(dom0.dir, `${name}.secret`);
    fs.writeFileSync(file, dom0Secrets[name] as string, { mode: 0o600 });
    secretFiles[name] = file;
  }
  return secretFiles;
}

function dom0Config(): Record<string, unknown> {
  // Exports under `exports` are shared and always read-only; a read-write export two guests share is one
  // directory listed in each guest's own exports.
  const guest = (name: string): Record<string, unknown> => ({
    name,
    secret: dom0Secrets[name],
    exports: [{ name: 'home', path: `${name}-home` }, { name: 'shared', path: 'shared' }, 'docs'],
  });
  return { exports: { docs: { path: 'docs' } }, guests: [guest('alice'), guest('bob')] };
}

async function scenes(dom0: Dom0, probe: Probe): Promise<void> {
  say('dom0', `server pid ${dom0.pid}, control socket ${dom0.controlPath}`);
  say('dom0', 'guests alice and bob: own export "home", read-write "shared" (both), read-only "docs" (both)');
  const secretFiles = prepareExports(dom0);
  const stopFollowing = followDom0Log(dom0);
  try {
    await talk(dom0, secretFiles, probe.port);
    await readOnlyDocs(dom0, secretFiles);
  } finally {
    stopFollowing();
  }
  check(probe.accepted() === 1, `dom0's port saw exactly one connection, its own (${probe.accepted()})`);
}

/** After cleanup: none of the demo's mounts, processes or directories is left. */
function checkNothingLeft(fuseBefore: string[], dom0Dir: string | null): void {
  // Guests mount inside their own mount namespaces, under guestTmp; one showing up in dom0's table would be a leak.
  // Other new FUSE mounts belong to someone else on this machine and are only reported.
  const fresh = fuseMounts().filter((l) => !fuseBefore.includes(l));
  const ours = fresh.filter((l) => (l.split(' ')[1] ?? '').startsWith(guestTmp));
  check(ours.length === 0, `no FUSE mount of the demo's left in /proc/mounts${ours.length ? `: ${ours.join('; ')}` : ''}`);
  for (const l of fresh.filter((x) => !ours.includes(x))) say('note', `a new FUSE mount that is not the demo's: ${l}`);
  // Every guest process names dom0's directory (--control, --secret-file); its workload dies with its namespace.
  const left = dom0Dir === null ? [] : processesMentioning(dom0Dir);
  check(left.length === 0, `no guest or dom0 process left${left.length ? ` (pids ${left.join(' ')})` : ''}`);
  for (const dir of [dom0Dir, guestTmp]) if (dir !== null) check(!fs.existsSync(dir), `${dir} is removed`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('demo: needs root (dom0 sandboxes guests in namespaces and mounts their filesystems)');
    process.exit(1);
  }
  const fuseBefore = fuseMounts();
  guestTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenfs-demo-'));
  const probe = await listenOnLoopback();
  let dom0: Dom0 | null = null;
  try {
    check(await hostCanConnect(probe.port), `dom0 itself can connect to its port 127.0.0.1:${probe.port}`);
    dom0 = await Dom0.start({ config: dom0Config() });
    await scenes(dom0, probe);
  } catch (err) {
    failures.push(`the demo stopped: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    console.log('\n== cleanup ==');
    for (const run of [...running]) await killGuest(run);
    await new Promise<void>((resolve) => probe.server.close(() => resolve()));
    if (dom0) await dom0.cleanup();
    // Sandbox roots of guests that were killed are left here, empty now that their namespaces are gone.
    fs.rmSync(guestTmp, { recursive: true, force: true });
  }
  checkNothingLeft(fuseBefore, dom0?.dir ?? null);
}

await main();
if (failures.length > 0) {
  console.error(`\ndemo FAILED (${failures.length}):\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  process.exit(1);
}
console.log('\ndemo passed: every expectation above held, and nothing was left running or mounted');

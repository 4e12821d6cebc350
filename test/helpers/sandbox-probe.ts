// Runs inside new namespaces (see sandbox.test.ts): builds a sandbox root, runs a probe workload in it, and
// prints the probe's findings as one JSON line.
import fs from 'node:fs';
import path from 'node:path';
import { buildRoot, runWorkload } from '../../core/frontend/sandbox.ts';

const [mountDir, port] = process.argv.slice(2);
if (!mountDir || !port) throw new Error('usage: sandbox-probe MOUNTDIR PORT');
const r = buildRoot(mountDir);
try {
  fs.writeFileSync(path.join(r.mountpoint, 'visible'), 'from the front end');
  fs.chmodSync(r.mountpoint, 0o777);
  const script = [
    'exec 2>/dev/null',
    'echo "id=$(id -u):$(id -g)"',
    'echo "root=$(ls / | tr "\\n" ,)"',
    'echo "etc=$(cat /etc/passwd >/dev/null && echo readable || echo missing)"',
    `echo "net=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' && echo connected || echo refused)"`,
    'echo "links=$(ls /sys/class/net 2>/dev/null | wc -l)"',
    'echo "pid1=$(cat /proc/1/comm)"',
    'echo "usr=$(touch /usr/probe && echo writable || echo readonly)"',
    `echo "mount=$(cat ${mountDir}/visible)"`,
    `echo "write=$(echo hi > ${mountDir}/mine && echo ok || echo fail)"`,
    // sed, not awk: awk is an /etc/alternatives link, and there is no /etc in here.
    'echo "nnp=$(sed -n "s/^NoNewPrivs:[[:space:]]*//p" /proc/self/status)"',
    'echo "capeff=$(sed -n "s/^CapEff:[[:space:]]*//p" /proc/self/status)"',
  ].join('\n');
  const out = path.join(r.root, 'tmp', 'probe.out');
  const code = await runWorkload(r.root, { command: ['sh', '-c', `(${script}) > /tmp/probe.out`], uid: 65534, gid: 65534, cwd: '/' });
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  const report = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  console.log(JSON.stringify({ code, ...report }));
} finally {
  r.cleanup();
}

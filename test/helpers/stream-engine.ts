// The real dom0 request engine (native/src/session.cpp) serving a fresh temporary export directory over a UNIX
// stream socket, for end-to-end tests of guest-side code. Each accepted connection gets its own engine.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Listener, closeFd } from '../../core/xen/control-socket.ts';
import { Engine, type EngineLimits, type EngineStats } from '../../core/xen/engine.ts';
import { ALL_FEATURES } from '../../core/protocol/opcodes.ts';

export interface StreamEngine {
  /** The export's directory on the host: node 1 on the wire. */
  exportDir: string;
  socketPath: string;
  /** Stats of the most recent connection's engine. */
  stats(): EngineStats | null;
  /** Reasons engines ended with, in order ('violation: …' for protocol violations). */
  ended: string[];
  close(): Promise<void>;
}

export interface StreamEngineOptions {
  readOnly?: boolean;
  limits?: EngineLimits;
  /** Where the temporary export lives; default os.tmpdir(). */
  parent?: string;
}

export async function startStreamEngine(opts: StreamEngineOptions = {}): Promise<StreamEngine> {
  const dir = await mkdtemp(path.join(opts.parent ?? tmpdir(), 'xenfs-engine-'));
  const exportDir = path.join(dir, 'export');
  await mkdir(exportDir);
  const socketPath = path.join(dir, 'stream.sock');
  const engines: Engine[] = [];
  const ended: string[] = [];
  Engine.configureWorkers(2);
  const listener = Listener.unixStream(socketPath, (conn) => {
    const engine = new Engine(
      {
        transport: 'stream', fd: conn.fd, exports: [{ path: exportDir, readOnly: opts.readOnly ?? false }],
        features: ALL_FEATURES, limits: opts.limits ?? {},
      },
      (violation, reason) => ended.push(violation ? `violation: ${reason}` : reason),
    );
    // The engine dup()s the descriptor; ours is closed at once.
    closeFd(conn.fd);
    engines.push(engine);
  });
  return {
    exportDir,
    socketPath,
    ended,
    stats: () => engines.at(-1)?.stats() ?? null,
    async close() {
      listener.close();
      for (const e of engines) e.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

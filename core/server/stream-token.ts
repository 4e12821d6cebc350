// Reads the one-time token a stream connection must present before it is served.
import fs from 'node:fs';
import { FdWatch } from '../xen/control-socket.ts';

/** Calls back with the token as hex, or null on timeout, EOF or error. Never closes `fd`. */
export function readToken(fd: number, bytes: number, timeoutMs: number, done: (token: string | null) => void): void {
  const buf = Buffer.alloc(bytes);
  let have = 0;
  let finished = false;
  const finish = (t: string | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    watcher.stop();
    done(t);
  };
  const timer = setTimeout(() => finish(null), timeoutMs);
  const watcher = new FdWatch(fd, () => {
    try {
      // Read only the token's bytes: whatever follows is the first request and belongs to the engine.
      const n = fs.readSync(fd, buf, have, bytes - have, null);
      if (n === 0) return finish(null);
      have += n;
      if (have === bytes) finish(buf.toString('hex'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') finish(null);
    }
  });
}

// The control channel (xenstore's role): JSON messages over a UNIX SOCK_SEQPACKET socket with descriptors riding
// along as SCM_RIGHTS, plus the listeners for the stream transports. Every descriptor is non-blocking and
// close-on-exec; whoever receives descriptors owns them and must close them.
import { EventEmitter } from 'node:events';
import { native, type AcceptedConnection, type NativeFdWatcher } from './native.ts';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface ControlMessage {
  body: unknown;
  fds: number[];
}

/** A descriptor and the watcher on it: stopped and closed together, once. */
class WatchedFd {
  #fd: number;
  #watcher: NativeFdWatcher | null;

  constructor(fd: number, onReadable: () => void) {
    this.#fd = fd;
    this.#watcher = new native.FdWatcher(fd, onReadable);
  }

  /** -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** False when it was closed already. */
  close(): boolean {
    if (this.#fd < 0) return false;
    this.#watcher?.stop();
    this.#watcher = null;
    native.closeFd(this.#fd);
    this.#fd = -1;
    return true;
  }
}

interface ConnectionEvents {
  message: [ControlMessage];
  close: [];
  error: [Error];
}

/** One end of a control connection. Emits 'message', 'error' (malformed message) and 'close' (once). */
export class ControlConnection extends EventEmitter<ConnectionEvents> {
  readonly #io: WatchedFd;
  readonly peer: PeerCredentials;

  constructor(fd: number, peer: PeerCredentials = { pid: -1, uid: -1, gid: -1 }) {
    super();
    this.peer = peer;
    this.#io = new WatchedFd(fd, () => this.#drain());
  }

  static connect(path: string): ControlConnection {
    return new ControlConnection(native.connectSeqpacket(path));
  }

  get closed(): boolean {
    return this.#io.fd < 0;
  }

  send(body: unknown, fds: number[] = []): void {
    if (this.#io.fd < 0) throw new Error('control connection is closed');
    native.sendMessage(this.#io.fd, Buffer.from(JSON.stringify(body)), fds);
  }

  close(): void {
    if (this.#io.close()) this.emit('close');
  }

  #drain(): void {
    while (this.#io.fd >= 0) {
      let msg;
      try {
        msg = native.recvMessage(this.#io.fd);
      } catch {
        return this.close();
      }
      if (msg === null) return;
      if (msg.eof) return this.close();
      if (msg.truncated) {
        this.emit('error', new Error('control message too large or with too many descriptors'));
        continue;
      }
      let body: unknown;
      try {
        body = JSON.parse(msg.data.toString('utf8'));
      } catch {
        for (const fd of msg.fds) native.closeFd(fd);
        this.emit('error', new Error('control message is not JSON'));
        continue;
      }
      this.emit('message', { body, fds: msg.fds });
    }
  }
}

type Accepted = (conn: AcceptedConnection) => void;

/** A listening socket (control seqpacket, UNIX stream or TCP) calling back with each accepted descriptor. */
export class Listener {
  readonly #io: WatchedFd;
  readonly port: number;

  private constructor(fd: number, port: number, onAccept: Accepted) {
    this.port = port;
    this.#io = new WatchedFd(fd, () => {
      for (;;) {
        if (this.#io.fd < 0) return;
        const conn = native.accept(this.#io.fd);
        if (!conn) return;
        onAccept(conn);
      }
    });
  }

  static control(path: string, onAccept: Accepted): Listener {
    return new Listener(native.listenSeqpacket(path), 0, onAccept);
  }

  static unixStream(path: string, onAccept: Accepted): Listener {
    return new Listener(native.listenStream(path), 0, onAccept);
  }

  static tcp(host: string, port: number, onAccept: Accepted): Listener {
    const l = native.listenTcp(host, port);
    return new Listener(l.fd, l.port, onAccept);
  }

  close(): void {
    this.#io.close();
  }
}

export function closeFd(fd: number): void {
  native.closeFd(fd);
}

/** A second descriptor for the same open file (close-on-exec); the caller owns it. */
export function dupFd(fd: number): number {
  return native.dupFd(fd);
}

/** Calls `onReadable` each time `fd` becomes readable, until stop(). Never closes the descriptor. */
export class FdWatch {
  #watcher: NativeFdWatcher | null;

  constructor(fd: number, onReadable: () => void) {
    this.#watcher = new native.FdWatcher(fd, onReadable);
  }

  stop(): void {
    this.#watcher?.stop();
    this.#watcher = null;
  }
}

// A guest domain's connection to dom0: the control-channel handshake (xenbus states, hello/welcome, descriptors),
// the transport it negotiates (shared ring, or a UNIX/TCP stream for comparison), and reconnection after dom0
// restarts. File access goes through `fs()`, which stays valid across reconnections.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { DisconnectedError, ProtocolError, XenfsError } from '../errors.ts';
import {
  decodeWelcome,
  type ExportInfo,
  type TransportKind,
  type Welcome,
  type XenbusStateName,
} from '../protocol/control.ts';
import { ALL_FEATURES, Feature } from '../protocol/opcodes.ts';
import { GuestRing, type GuestRingOptions, type RingHandover } from '../ring/guest-ring.ts';
import { ControlConnection, closeFd, type ControlMessage } from '../xen/control-socket.ts';
import { ReconnectingTransport } from './reconnecting-transport.ts';
import { RingTransport } from './ring-transport.ts';
import { StreamTransport } from './stream-transport.ts';
import type { Transport } from './transport.ts';
import { GuestFs, type GuestFsOptions } from './guest-fs.ts';

export const PROTOCOL_VERSION = 1;
/** How long a call made while dom0 is away waits for it to come back, by default. */
export const DEFAULT_WAIT_MS = 10_000;

/** The export `name` (the first by default) of a welcome's list; XENFS_ERR_CONFIG when there is none. */
export function findExport(exports: ExportInfo[], name: string | undefined, domain: string): ExportInfo {
  const e = name === undefined ? exports[0] : exports.find((x) => x.name === name);
  if (!e) throw new XenfsError('XENFS_ERR_CONFIG', `no export ${name ?? '(any)'} for ${domain}`);
  return e;
}

export interface GuestOptions {
  /** dom0's control socket, `<stateDir>/control.sock`. */
  controlPath: string;
  /** The domain name dom0's config knows this guest by. */
  domain: string;
  secret?: string;
  transport?: TransportKind;
  ring?: GuestRingOptions;
  /** Reconnect by itself when dom0 goes away (default true). */
  reconnect?: boolean;
  /** Pause between reconnection attempts, ms (default 100). */
  reconnectDelayMs?: number;
  /** How long a call made while disconnected waits for dom0 to come back, ms (default 10000; 0 fails at once). */
  waitMs?: number;
  /** Handshake deadline, ms (default 5000). */
  handshakeMs?: number;
  /**
   * Set by a front end that serves the ring itself (the native FUSE front end): called on every connection, after
   * the welcome and before Connected, with the ring to take over. `fs()` is then unusable on this guest. A
   * rejection fails the connection attempt.
   */
  takeOver?: (conn: TakenConnection) => Promise<void>;
}

/** What a connection offers the front end that takes its ring over. */
export interface TakenConnection {
  welcome: Welcome;
  /** The ring, handed over: the receiver owns the descriptors. */
  handOver(): RingHandover;
  /**
   * Hands dom0 this guest's FUSE connection (`fuse-attach`), mounted on export root `root`: dom0 then registers
   * backing files on it and pushes invalidations through it. Rejects with dom0's refusal.
   */
  attachFuse(fd: number, root: number): Promise<void>;
}

interface GuestEvents {
  state: [XenbusStateName];
  error: [Error];
}

export class Guest extends EventEmitter<GuestEvents> {
  readonly options: Required<Pick<GuestOptions, 'reconnect' | 'reconnectDelayMs' | 'handshakeMs'>> & GuestOptions;
  readonly transport: ReconnectingTransport;
  #state: XenbusStateName = 'Initialising';
  #control: ControlConnection | null = null;
  #welcome: Welcome | null = null;
  #closing = false;
  #retry: NodeJS.Timeout | null = null;
  #connections = 0;
  #superseded = false;

  private constructor(opts: GuestOptions) {
    super();
    this.options = { reconnect: true, reconnectDelayMs: 100, handshakeMs: 5000, ...opts };
    this.transport = new ReconnectingTransport(`${opts.transport ?? 'ring'}:${opts.domain}`, opts.waitMs ?? DEFAULT_WAIT_MS);
  }

  /** Connects and completes the handshake; rejects if the first attempt fails. */
  static async connect(opts: GuestOptions): Promise<Guest> {
    const g = new Guest(opts);
    await g.#attempt();
    return g;
  }

  get state(): XenbusStateName {
    return this.#state;
  }

  get exports(): ExportInfo[] {
    return this.#welcome?.exports ?? [];
  }

  get features(): number {
    return this.#welcome?.features ?? 0;
  }

  /** The caching dom0's configuration asks of this guest's mounts ('none' until connected). */
  get cacheMode(): 'none' | 'auto' {
    return this.#welcome?.cache ?? 'none';
  }

  /** How many times a connection reached Connected (1 + reconnections). */
  get connections(): number {
    return this.#connections;
  }

  /** The root node of an export (the first one by default). */
  exportRoot(name?: string): ExportInfo {
    return findExport(this.exports, name, this.options.domain);
  }

  /** An fs/promises-like view of one export (the first by default). It lives as long as the guest connection. */
  fs(exportName?: string, opts: GuestFsOptions = {}): GuestFs {
    return new GuestFs(this.transport, this.exportRoot(exportName).node, opts);
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#setState('Closing');
    try {
      this.#control?.send({ type: 'state', state: 'Closing' });
    } catch {
      // dom0 may already be gone; closing is still what we want
    }
    this.#control?.close();
    this.#control = null;
    await this.transport.close();
    this.#setState('Closed');
  }

  #setState(s: XenbusStateName): void {
    if (this.#state === s) return;
    this.#state = s;
    this.emit('state', s);
  }

  async #attempt(): Promise<void> {
    this.#setState('Initialising');
    const conn = ControlConnection.connect(this.options.controlPath);
    let ring: GuestRing | null = null;
    try {
      const inbox = new Inbox(conn, this.options.handshakeMs);
      const first = await inbox.next();
      if (!isState(first.body, 'InitWait')) throw new ProtocolError('dom0 did not announce InitWait');
      const kind = this.options.transport ?? 'ring';
      const hello: Record<string, unknown> = {
        type: 'hello',
        domain: this.options.domain,
        version: PROTOCOL_VERSION,
        features: this.options.ring?.persistent === false ? ALL_FEATURES & ~Feature.PERSISTENT_GRANTS : ALL_FEATURES,
        transport: kind,
      };
      if (this.options.secret !== undefined) hello.secret = this.options.secret;
      if (kind === 'ring') {
        ring = new GuestRing({ name: `xenfs-${this.options.domain}`, ...this.options.ring });
        hello.ring = ring.setup;
        conn.send(hello, ring.remoteFds);
      } else {
        conn.send(hello);
      }
      this.#setState('Initialised');
      const reply = decodeWelcome((await inbox.next()).body);
      if (reply.type === 'error') throw new XenfsError('XENFS_ERR_PROTOCOL', `dom0 refused: ${reply.message}`);
      if (this.options.takeOver) await this.#handOver(reply, ring, conn, inbox);
      inbox.stop();
      const transport = ring ? new RingTransport(ring, `ring:${this.options.domain}`) : await this.#openStream(reply);
      this.#welcome = reply;
      this.#control = conn;
      conn.on('close', () => this.#lost(transport));
      conn.on('message', (m) => this.#onMessage(m));
      // A ring taken over is served elsewhere: calls through fs() wait for a transport that never comes.
      if (!this.options.takeOver) this.transport.attach(transport);
      this.#connections++;
      this.#setState('Connected');
    } catch (err) {
      ring?.close(new DisconnectedError('handshake failed'));
      conn.close();
      throw err;
    }
  }

  async #handOver(welcome: Welcome, ring: GuestRing | null, conn: ControlConnection, inbox: Inbox): Promise<void> {
    const takeOver = this.options.takeOver as NonNullable<GuestOptions['takeOver']>;
    if (!ring) throw new XenfsError('XENFS_ERR_CONFIG', 'a front end that takes the ring over needs the ring transport');
    if ((welcome.features & Feature.PERSISTENT_GRANTS) === 0) {
      throw new XenfsError('XENFS_ERR_PROTOCOL', 'dom0 did not agree to persistent grants, which a ring taken over needs');
    }
    await takeOver({
      welcome,
      handOver: () => ring.handOver(),
      attachFuse: async (fd, root) => {
        conn.send({ type: 'fuse-attach', root }, [fd]);
        for (;;) {
          const m = await inbox.next();
          for (const x of m.fds) closeFd(x);
          const body = m.body as { type?: unknown; ok?: unknown; code?: unknown; message?: unknown } | null;
          if (body?.type !== 'fuse-attach') continue;
          if (body.ok === true) return;
          throw new XenfsError('XENFS_ERR_PROTOCOL', `dom0 refused the FUSE connection: ${String(body.code)} ${String(body.message)}`);
        }
      },
    });
  }

  async #openStream(w: Welcome): Promise<Transport> {
    if (!w.stream) throw new ProtocolError('dom0 offered no stream endpoint');
    const kind = this.options.transport;
    const socket =
      kind === 'unix' && w.stream.unixPath
        ? net.connect({ path: w.stream.unixPath })
        : net.connect({ host: '127.0.0.1', port: w.stream.tcpPort ?? 0 });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    // The token proves this socket belongs to the guest that just authenticated on the control channel.
    socket.write(Buffer.from(w.stream.token, 'hex'));
    return new StreamTransport(socket, { name: `${kind}:${this.options.domain}` });
  }

  #onMessage(m: ControlMessage): void {
    for (const fd of m.fds) closeFd(fd);
    if (!isState(m.body, 'Closing')) return;
    // Another connection of this domain took over: reconnecting would only evict it in turn.
    if ((m.body as { replaced?: unknown }).replaced === true) this.#superseded = true;
    this.#control?.close();
  }

  /** True once dom0 ended this guest's connection in favour of a newer one of the same domain. */
  get superseded(): boolean {
    return this.#superseded;
  }

  #lost(transport: Transport): void {
    this.#control = null;
    this.transport.detach();
    void transport.close();
    if (this.#closing) return;
    this.#setState('Closed');
    if (this.#superseded) void this.transport.close();
    else if (this.options.reconnect) this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#closing) return;
      this.#attempt().catch(() => this.#scheduleRetry());
    }, this.options.reconnectDelayMs);
  }
}

function isState(body: unknown, state: XenbusStateName): boolean {
  return typeof body === 'object' && body !== null && (body as { type?: unknown }).type === 'state' &&
    (body as { state?: unknown }).state === state;
}

/** Hands out control messages in order, failing after a deadline or when the connection closes. */
class Inbox {
  readonly #queue: ControlMessage[] = [];
  #waiter: { resolve: (m: ControlMessage) => void; reject: (e: Error) => void } | null = null;
  #closed = false;
  readonly #conn: ControlConnection;
  readonly #ms: number;
  readonly #onMessage = (m: ControlMessage): void => {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(m);
    } else this.#queue.push(m);
  };
  readonly #onClose = (): void => {
    this.#closed = true;
    this.#waiter?.reject(new DisconnectedError('dom0 closed the control channel'));
    this.#waiter = null;
  };

  constructor(conn: ControlConnection, ms: number) {
    this.#conn = conn;
    this.#ms = ms;
    conn.on('message', this.#onMessage);
    conn.on('close', this.#onClose);
  }

  next(): Promise<ControlMessage> {
    const m = this.#queue.shift();
    if (m) return Promise.resolve(m);
    if (this.#closed) return Promise.reject(new DisconnectedError('dom0 closed the control channel'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new DisconnectedError(`no answer from dom0 within ${this.#ms} ms`));
      }, this.#ms);
      this.#waiter = {
        resolve: (x) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  stop(): void {
    this.#conn.off('message', this.#onMessage);
    this.#conn.off('close', this.#onClose);
  }
}

// The dom0 server: listens on `<stateDir>/control.sock`, runs one GuestSession per connected guest, and, when
// configured, accepts the stream transports (UNIX socket, TCP on loopback) that carry the same protocol.
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { ServerConfig, GuestConfig } from '../config/config.ts';
import { ControlConnection, Listener, closeFd } from '../xen/control-socket.ts';
import { Engine, type EngineStats } from '../xen/engine.ts';
import type { EventLogFile } from '../xen/event-log.ts';
import { stderrLogger, type Logger } from '../util/log.ts';
import { GuestSession, type SessionHost, type StreamOffer } from './guest-session.ts';
import { readToken } from './stream-token.ts';

const TOKEN_BYTES = 32;
const TOKEN_TTL_MS = 10_000;

interface ServerEvents {
  connected: [string];
  disconnected: [string, string];
}

export class XenfsServer extends EventEmitter<ServerEvents> implements SessionHost {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly controlPath: string;
  readonly #sessions = new Set<GuestSession>();
  readonly #byName = new Map<string, GuestSession>();
  readonly #tokens = new Map<string, { session: GuestSession; timer: NodeJS.Timeout }>();
  readonly #listeners: Listener[] = [];
  #unixStreamPath: string | null = null;
  #tcpPort: number | null = null;

  readonly eventLog: EventLogFile | null;

  /** `options.eventLog`: guests' changes are reported there (docs/events.md); the caller owns and closes it. */
  constructor(config: ServerConfig, logger: Logger = stderrLogger, options: { eventLog?: EventLogFile } = {}) {
    super();
    this.config = config;
    this.logger = logger;
    this.eventLog = options.eventLog ?? null;
    this.controlPath = path.join(config.stateDir, 'control.sock');
  }

  start(): void {
    Engine.configureWorkers(this.config.workers);
    fs.mkdirSync(this.config.stateDir, { recursive: true, mode: 0o755 });
    // Guests create files with the modes they ask for; dom0's own umask must not rewrite them.
    process.umask(0);
    this.#listeners.push(Listener.control(this.#freshSocketPath(this.controlPath), (c) => this.#onControl(c)));
    // Guests run as other users; each one authenticates by secret or uid, so the socket itself may be open.
    fs.chmodSync(this.controlPath, 0o666);
    if (this.config.listen.unix) {
      this.#unixStreamPath = this.#freshSocketPath(path.join(this.config.stateDir, 'stream.sock'));
      this.#listeners.push(Listener.unixStream(this.#unixStreamPath, (c) => this.#onStream(c.fd)));
      fs.chmodSync(this.#unixStreamPath, 0o666);
    }
    const tcp = this.config.listen.tcp;
    if (tcp) {
      const l = Listener.tcp(tcp.host, tcp.port, (c) => this.#onStream(c.fd));
      this.#tcpPort = l.port;
      this.#listeners.push(l);
    }
    this.logger.log('info', 'dom0 server listening', {
      control: this.controlPath,
      unix: this.#unixStreamPath,
      tcpPort: this.#tcpPort,
      guests: this.config.guests.map((g) => g.name),
    });
  }

  /** Ends every guest session and closes the listeners. */
  async stop(): Promise<void> {
    for (const l of this.#listeners.splice(0)) l.close();
    for (const s of [...this.#sessions]) s.close('dom0 shutting down');
    for (const { timer } of this.#tokens.values()) clearTimeout(timer);
    this.#tokens.clear();
    for (const p of [this.controlPath, this.#unixStreamPath]) if (p) fs.rmSync(p, { force: true });
  }

  get tcpPort(): number | null {
    return this.#tcpPort;
  }

  guestStats(name: string): EngineStats | null {
    return this.#byName.get(name)?.stats() ?? null;
  }

  connectedGuests(): string[] {
    return [...this.#byName.keys()];
  }

  // SessionHost
  findGuest(name: string): GuestConfig | undefined {
    return this.config.guests.find((g) => g.name === name);
  }

  claim(name: string, session: GuestSession): void {
    const old = this.#byName.get(name);
    if (old && old !== session) old.close('replaced by a new connection of the same domain', true);
    this.#byName.set(name, session);
  }

  offerStream(session: GuestSession, token: string): StreamOffer | null {
    if (!this.#unixStreamPath && this.#tcpPort === null) return null;
    const timer = setTimeout(() => this.#tokens.delete(token), TOKEN_TTL_MS);
    this.#tokens.set(token, { session, timer });
    const offer: StreamOffer = { token };
    if (this.#unixStreamPath) offer.unixPath = this.#unixStreamPath;
    if (this.#tcpPort !== null) offer.tcpPort = this.#tcpPort;
    return offer;
  }

  #freshSocketPath(p: string): string {
    // A socket file left by a dom0 that died would make bind() fail; nothing can be listening on it any more
    // because only one server owns a state directory.
    fs.rmSync(p, { force: true });
    return p;
  }

  #onControl(c: { fd: number; pid: number; uid: number; gid: number }): void {
    const conn = new ControlConnection(c.fd, { pid: c.pid, uid: c.uid, gid: c.gid });
    const s = new GuestSession(conn, this);
    this.#sessions.add(s);
    s.on('state', (st) => {
      if (st === 'Connected' && s.domain) this.emit('connected', s.domain);
    });
    s.once('closed', (reason) => {
      this.#sessions.delete(s);
      const name = s.domain;
      if (name && this.#byName.get(name) === s) {
        this.#byName.delete(name);
        this.emit('disconnected', name, reason);
      }
    });
  }

  #onStream(fd: number): void {
    readToken(fd, TOKEN_BYTES, TOKEN_TTL_MS, (token) => {
      const entry = token ? this.#tokens.get(token) : undefined;
      if (!entry || !token) {
        this.logger.log('warn', 'stream connection without a valid token', {});
        return closeFd(fd);
      }
      this.#tokens.delete(token);
      clearTimeout(entry.timer);
      entry.session.attachStream(fd);
    });
  }
}

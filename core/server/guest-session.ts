// One guest's life on dom0: the control connection's state machine (InitWait → hello → Connected → Closed), the
// checks on what the guest sends, and the native engine that serves its requests. Anything wrong with the guest
// ends this session only.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ProtocolError, errnoName } from '../errors.ts';
import type { GuestConfig } from '../config/config.ts';
import { decodeFuseAttach, decodeHello, type Hello, type XenbusStateName } from '../protocol/control.ts';
import { ALL_FEATURES, Feature } from '../protocol/opcodes.ts';
import { type ControlConnection, type ControlMessage, closeFd } from '../xen/control-socket.ts';
import { Engine, type EngineLimits, type EngineStats } from '../xen/engine.ts';
import type { EventLogFile } from '../xen/event-log.ts';
import { isFuseDevice } from '../xen/fuse-kernel.ts';
import type { Logger } from '../util/log.ts';

export const PROTOCOL_VERSION = 1;

export interface StreamOffer {
  token: string;
  unixPath?: string;
  tcpPort?: number;
}

export interface SessionHost {
  logger: Logger;
  findGuest(name: string): GuestConfig | undefined;
  /** Registers a one-time token for a stream connection; returns where to connect. */
  offerStream(session: GuestSession, token: string): StreamOffer | null;
  /** A guest authenticated as `name`: any older session of that name is ended. */
  claim(name: string, session: GuestSession): void;
  /** Where guests' sessions report their changes (docs/events.md); null: no change events. */
  readonly eventLog: EventLogFile | null;
}

interface SessionEvents {
  state: [XenbusStateName];
  closed: [string];
}

function sameSecret(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

export function engineLimits(g: GuestConfig): EngineLimits {
  const l = g.limits;
  return {
    maxNodes: l.maxNodes,
    maxHandles: l.maxHandles,
    maxXattrSize: l.maxXattrSize,
    maxFileSize: l.maxFileSize,
    maxMappedGrants: l.maxMappedGrants,
    maxBytesInFlight: l.maxBytesInFlight,
    spinMicros: l.spinMicros,
    maxLocks: l.maxLocks,
    maxLockWaiters: l.maxLockWaiters,
  };
}

export class GuestSession extends EventEmitter<SessionEvents> {
  #state: XenbusStateName = 'Initialising';
  #engine: Engine | null = null;
  #guest: GuestConfig | null = null;
  #features = 0;
  #closed = false;
  readonly #conn: ControlConnection;
  readonly #host: SessionHost;

  constructor(conn: ControlConnection, host: SessionHost) {
    super();
    this.#conn = conn;
    this.#host = host;
    conn.on('message', (m) => this.#onMessage(m));
    conn.on('error', (e) => this.#fail(e.message));
    conn.on('close', () => this.#teardown('control channel closed'));
    this.#setState('InitWait');
    conn.send({ type: 'state', state: 'InitWait', version: PROTOCOL_VERSION, features: ALL_FEATURES });
  }

  get domain(): string | null {
    return this.#guest?.name ?? null;
  }

  get state(): XenbusStateName {
    return this.#state;
  }

  get guest(): GuestConfig | null {
    return this.#guest;
  }

  get features(): number {
    return this.#features;
  }

  stats(): EngineStats | null {
    return this.#engine?.stats() ?? null;
  }

  /** Ends the session: stops serving, closes the guest's handles and its control channel. Idempotent. */
  close(reason = 'closed by dom0', replaced = false): void {
    if (this.#closed) return;
    try {
      // `replaced` tells the old guest not to reconnect: two guests of one name would otherwise evict each other
      // for ever.
      this.#conn.send({ type: 'state', state: 'Closing', reason, replaced });
    } catch {
      // the guest may be gone already
    }
    this.#teardown(reason);
  }

  /** Called by the server with a stream connection that presented this session's token. */
  attachStream(fd: number): void {
    const g = this.#guest;
    if (!g || this.#engine || this.#closed) return closeFd(fd);
    try {
      this.#engine = this.#startEngine({ transport: 'stream', fd }, g);
      this.#host.claim(g.name, this);
      this.#setState('Connected');
    } finally {
      closeFd(fd);
    }
  }

  #setState(s: XenbusStateName): void {
    this.#state = s;
    this.emit('state', s);
  }

  #onMessage(m: ControlMessage): void {
    if (this.#state !== 'InitWait') {
      const body = m.body as { type?: unknown; state?: unknown };
      if (this.#state === 'Connected' && body && body.type === 'fuse-attach') return this.#attachFuse(m.body, m.fds);
      for (const fd of m.fds) closeFd(fd);
      if (body && body.type === 'state' && body.state === 'Closing') this.#teardown('guest closed');
      return;
    }
    try {
      this.#handshake(decodeHello(m.body), m.fds);
    } catch (err) {
      for (const fd of m.fds) closeFd(fd);
      this.#fail((err as Error).message);
    }
  }

  /**
   * `fuse-attach` {root}: the guest hands dom0 its FUSE connection (one /dev/fuse descriptor, mounted on its side on
   * export root `root`), for dom0 to register backing files on and push invalidations through. Answered with
   * `fuse-attach` {ok} or {ok: false, code, message}; a refusal leaves the session as it was (the guest can do
   * without passthrough).
   */
  #attachFuse(body: unknown, fds: number[]): void {
    let refusal: { code: string; message: string } | null;
    try {
      refusal = this.#fuseRefusal(body, fds);
    } finally {
      // The engine keeps its own duplicate; ours are closed whatever happened, and before the answer, so a guest
      // that hears back sees dom0 holding exactly what it keeps.
      for (const fd of fds) closeFd(fd);
    }
    if (refusal) this.#host.logger.log('warn', 'fuse-attach refused', { domain: this.#guest?.name ?? null, ...refusal });
    this.#conn.send(refusal ? { type: 'fuse-attach', ok: false, ...refusal } : { type: 'fuse-attach', ok: true });
  }

  /** Attaches the one descriptor of a fuse-attach to the engine; null, or why not. */
  #fuseRefusal(body: unknown, fds: number[]): { code: string; message: string } | null {
    if (fds.length !== 1) return { code: 'EINVAL', message: `a fuse-attach carries exactly one descriptor, got ${fds.length}` };
    let root: number;
    try {
      root = decodeFuseAttach(body, this.#guest?.exports.length ?? 0).root;
    } catch (err) {
      // A refusal, not a violation: the guest keeps its session and can still serve its mount through the ring.
      return { code: 'EINVAL', message: (err as Error).message };
    }
    const fd = fds[0] as number;
    if (!isFuseDevice(fd)) return { code: 'ENODEV', message: 'the descriptor is not /dev/fuse' };
    if (!this.#engine) return { code: 'ENOTCONN', message: 'no engine serves this guest yet' };
    // The engine checks the descriptor and the root again: it is what keeps them.
    const rc = this.#engine.attachFuse(fd, root);
    if (rc === 0) return null;
    const code = errnoName(rc);
    return { code, message: code === 'EBUSY' ? 'a FUSE connection is attached already' : `attaching failed (${code})` };
  }


  #authenticate(hello: Hello): GuestConfig {
    const g = this.#host.findGuest(hello.domain);
    // One answer for every failure, so a probing guest learns nothing about which names exist.
    const refuse = (): never => {
      throw new ProtocolError(`authentication failed for domain '${hello.domain}'`);
    };
    if (!g) return refuse();
    if (g.secret !== undefined && (hello.secret === undefined || !sameSecret(g.secret, hello.secret))) refuse();
    if (g.uid !== undefined && this.#conn.peer.uid !== g.uid) refuse();
    return g;
  }

  #handshake(hello: Hello, fds: number[]): void {
    if (hello.version !== PROTOCOL_VERSION) throw new ProtocolError(`protocol version ${hello.version} unsupported`);
    const g = this.#authenticate(hello);
    this.#features = hello.features & ALL_FEATURES;
    this.#guest = g;
    this.#setState('Initialised');
    const exports = g.exports.map((e, i) => ({ name: e.name, node: i + 1, readOnly: e.readOnly }));
    const welcome: Record<string, unknown> = {
      type: 'welcome',
      state: 'Connected',
      version: PROTOCOL_VERSION,
      features: this.#features,
      exports,
      limits: { ...g.limits },
      cache: g.cache,
    };
    if (hello.transport === 'ring') {
      const ring = hello.ring;
      if (!ring) throw new ProtocolError('hello.ring is missing');
      if (fds.length !== 3) throw new ProtocolError(`a ring hello carries 3 descriptors, got ${fds.length}`);
      if (ring.ringSlots > g.limits.maxRingSlots) throw new ProtocolError('hello.ring.ringSlots exceeds maxRingSlots');
      if (ring.grantTable.entries > g.limits.maxGrantEntries) {
        throw new ProtocolError('hello.ring.grantTable.entries exceeds maxGrantEntries');
      }
      // Persistent grants keep every data page mapped; when that would not fit the guest's grant limit, the
      // guest is served the per-request way instead (it still works: its grants just stay unrevoked).
      if (ring.ringSlots * 32 > g.limits.maxMappedGrants) this.#features &= ~Feature.PERSISTENT_GRANTS;
      welcome.features = this.#features;
      // Taken out of the array: #onMessage closes whatever a refused hello leaves there, and a descriptor closed
      // twice may by then be another guest's file, opened meanwhile by an engine thread.
      const [memFd, evtRxFd, evtTxFd] = fds.splice(0) as [number, number, number];
      try {
        this.#engine = this.#startEngine(
          { transport: 'ring', memFd, evtRxFd, evtTxFd, ...ring, memPages: ring.memPages },
          g,
        );
      } catch (err) {
        throw new ProtocolError(`ring setup refused: ${(err as Error).message}`);
      } finally {
        for (const fd of [memFd, evtRxFd, evtTxFd]) closeFd(fd);
      }
      // Only a guest whose ring is up takes its name over: a broken hello must not evict a working session.
      this.#host.claim(g.name, this);
      this.#conn.send(welcome);
      this.#setState('Connected');
    } else {
      for (const fd of fds.splice(0)) closeFd(fd);
      const token = crypto.randomBytes(32).toString('hex');
      const offer = this.#host.offerStream(this, token);
      if (!offer || (hello.transport === 'unix' && !offer.unixPath) || (hello.transport === 'tcp' && !offer.tcpPort)) {
        throw new ProtocolError(`dom0 does not offer the ${hello.transport} transport`);
      }
      welcome.stream = offer;
      this.#conn.send(welcome);
    }
    this.#host.logger.log('info', 'guest connected', { domain: g.name, transport: hello.transport });
  }

  #startEngine(
    t: { transport: 'stream'; fd: number } | ({ transport: 'ring'; memFd: number; evtRxFd: number; evtTxFd: number } &
      Omit<NonNullable<Hello['ring']>, never>),
    g: GuestConfig,
  ): Engine {
    const common = {
      exports: g.exports.map((e) => ({ path: e.path, readOnly: e.readOnly, writesViaDom0: e.writes === 'dom0' })),
      features: this.#features,
      limits: engineLimits(g),
      ...(g.owner ? { identity: g.owner } : {}),
      ...(g.idMap ? { idMap: g.idMap } : {}),
      ...(this.#host.eventLog
        ? { events: { log: this.#host.eventLog, guest: g.name, exports: g.exports.map((e) => e.name) } }
        : {}),
    };
    return new Engine({ ...common, ...t }, (violation, reason) => {
      if (violation) this.#host.logger.log('warn', 'guest disconnected: protocol violation', { domain: g.name, reason });
      this.close(violation ? `protocol violation: ${reason}` : reason);
    });
  }

  #fail(reason: string): void {
    this.#host.logger.log('warn', 'guest refused', { domain: this.#guest?.name ?? null, reason });
    try {
      this.#conn.send({ type: 'error', code: 'XENFS_ERR_PROTOCOL', message: reason });
    } catch {
      // nothing more to tell a guest that is gone
    }
    this.#teardown(reason);
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#setState('Closing');
    // Stopping the engine waits for the guest's in-flight requests, then releases its grants and handles.
    this.#engine?.stop();
    this.#engine = null;
    this.#conn.close();
    this.#setState('Closed');
    if (this.#guest) this.#host.logger.log('info', 'guest disconnected', { domain: this.#guest.name, reason });
    this.emit('closed', reason);
  }
}

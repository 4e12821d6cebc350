// The stream transport (docs/protocol.md, "stream"): requests and responses as slots on a connected UNIX or
// TCP socket, for hosts without shared memory and as a comparison point for the ring. Requests are pipelined
// up to maxInFlight; responses may come back in any order and are matched by id.
import net from 'node:net';
import { DisconnectedError, ProtocolError } from '../errors.ts';
import { MAX_DATA, ReqOff, SLOT_SIZE } from '../protocol/layout.ts';
import { RequestFlag } from '../protocol/opcodes.ts';
import { type ParsedResponse, ResponseParser } from './response-parser.ts';
import type { RequestFrame, ResponseFrame, Transport } from './transport.ts';

export interface StreamTransportOptions {
  /** Requests on the wire at once; more wait in a local queue. Default 64. */
  maxInFlight?: number;
  /** For logs and errors; default 'stream:<remote address>'. */
  name?: string;
}

export const DEFAULT_MAX_IN_FLIGHT = 64;

interface Pending {
  frame: RequestFrame;
  resolve: (frame: ResponseFrame) => void;
  reject: (err: Error) => void;
}

function checkFrame(frame: RequestFrame): void {
  if (frame.slot.length !== SLOT_SIZE) throw new RangeError(`request slot is ${frame.slot.length} bytes`);
  if (frame.slot.readUInt8(ReqOff.NSEGS) !== 0) throw new RangeError('nsegs must be 0 on a stream');
  const ext = (frame.slot.readUInt16LE(ReqOff.FLAGS) & RequestFlag.PAYLOAD_EXT) !== 0;
  const payloadLen = frame.slot.readUInt32LE(ReqOff.PAYLOAD_LEN);
  if (ext !== (frame.payload !== null) || (frame.payload !== null && frame.payload.length !== payloadLen)) {
    throw new RangeError('payload does not match F_PAYLOAD_EXT and payload_len');
  }
  if (!Number.isInteger(frame.outLen) || frame.outLen < 0 || frame.outLen > MAX_DATA) {
    throw new RangeError(`outLen ${frame.outLen} is not 0..${MAX_DATA}`);
  }
}

/**
 * A Transport over a connected socket. The transport owns the socket from construction: close() (or a peer
 * violation, or the peer closing) destroys it and rejects every outstanding call.
 */
export class StreamTransport implements Transport {
  readonly name: string;
  readonly maxInFlight: number;
  readonly #socket: net.Socket;
  readonly #parser: ResponseParser;
  readonly #inFlight = new Map<bigint, Pending>();
  readonly #queue: Pending[] = [];
  #nextId = 1n;
  #corked = false;
  #failure: Error | null = null;
  #closed: Promise<void> | null = null;

  constructor(socket: net.Socket, opts: StreamTransportOptions = {}) {
    const max = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${max}`);
    }
    this.maxInFlight = max;
    this.#socket = socket;
    const remote = socket.remoteAddress === undefined ? 'unix' : `${socket.remoteAddress}:${socket.remotePort ?? 0}`;
    this.name = opts.name ?? `stream:${remote}`;
    this.#parser = new ResponseParser(
      (id) => this.#inFlight.get(id)?.frame.outLen,
      (response) => this.#settle(response),
    );
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new DisconnectedError(`${this.name}: ${err.message}`, { cause: err })));
    // A half-close from the peer means no more responses will come: nothing outstanding can complete.
    socket.on('end', () => this.#fail(new DisconnectedError(`${this.name}: peer closed the connection`)));
    socket.on('close', () => this.#fail(new DisconnectedError(`${this.name}: connection closed`)));
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Requests waiting for an in-flight slot. */
  get queued(): number {
    return this.#queue.length;
  }

  call(frame: RequestFrame): Promise<ResponseFrame> {
    if (this.#failure !== null) return Promise.reject(this.#disconnected());
    try {
      checkFrame(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<ResponseFrame>((resolve, reject) => {
      const pending: Pending = { frame, resolve, reject };
      if (this.#inFlight.size < this.maxInFlight) this.#send(pending);
      else this.#queue.push(pending);
    });
  }

  close(): Promise<void> {
    if (this.#closed === null) {
      this.#fail(new DisconnectedError(`${this.name}: transport closed`));
      this.#closed = this.#socket.closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    }
    return this.#closed;
  }

  #send(pending: Pending): void {
    const id = this.#nextId++;
    pending.frame.slot.writeBigUInt64LE(id, ReqOff.ID);
    this.#inFlight.set(id, pending);
    // Everything written in one tick leaves in one writev: a burst of 32 pipelined requests costs one syscall.
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        if (!this.#socket.destroyed) this.#socket.uncork();
      });
    }
    this.#socket.write(pending.frame.slot);
    if (pending.frame.payload !== null) this.#socket.write(pending.frame.payload);
  }

  #onData(chunk: Buffer): void {
    if (this.#failure !== null) return;
    try {
      this.#parser.push(chunk);
    } catch (err) {
      const violation = err instanceof ProtocolError ? err : new ProtocolError(String(err), { cause: err });
      this.#fail(violation, this.#parser.culpritId);
    }
  }

  #settle(response: ParsedResponse): void {
    const pending = this.#inFlight.get(response.id);
    if (pending === undefined) return; // the parser only hands back ids it matched
    this.#inFlight.delete(response.id);
    pending.resolve({ slot: response.slot, data: response.data });
    const next = this.#queue.shift();
    if (next !== undefined) this.#send(next);
  }

  #disconnected(): DisconnectedError {
    const failure = this.#failure;
    if (failure instanceof DisconnectedError) return failure;
    return new DisconnectedError(`${this.name}: connection closed after a protocol error`, { cause: failure });
  }

  // First failure wins; later ones (the 'close' that follows an 'error') change nothing. The call whose
  // response broke the protocol gets the ProtocolError itself; every other outstanding call is disconnected.
  #fail(err: Error, culprit: bigint | null = null): void {
    if (this.#failure !== null) return;
    this.#failure = err;
    const others = this.#disconnected();
    const waiting = [...this.#inFlight.entries()];
    this.#inFlight.clear();
    const queued = this.#queue.splice(0);
    for (const [id, pending] of waiting) pending.reject(id === culprit ? err : others);
    for (const pending of queued) pending.reject(others);
    this.#socket.destroy();
  }
}

export type StreamAddress = { path: string } | { host: string; port: number };

/** Connect a socket to a stream server and wrap it. Rejects with DisconnectedError if the connect fails. */
export function connectStream(address: StreamAddress, opts: StreamTransportOptions = {}): Promise<StreamTransport> {
  const label = 'path' in address ? `stream:${address.path}` : `stream:${address.host}:${address.port}`;
  return new Promise((resolve, reject) => {
    const socket = 'path' in address
      ? net.connect({ path: address.path })
      : net.connect({ host: address.host, port: address.port });
    const onError = (err: Error): void => {
      socket.destroy();
      reject(new DisconnectedError(`${label}: connect failed: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      // Small requests must not wait for Nagle: the client pipelines instead.
      if (!('path' in address)) socket.setNoDelay(true);
      resolve(new StreamTransport(socket, { name: label, ...opts }));
    });
  });
}

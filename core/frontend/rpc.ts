// One request, start to finish, for GuestFs: encode, hand to the transport, decode, and turn a non-zero status
// into an ErrnoError naming the caller's call and path. Also the fire-and-forget FORGET that balances every
// entry reply. Decoding a reply the peer got wrong closes the transport: its replies are no longer trusted.
import { ErrnoError, ProtocolError } from '../errors.ts';
import { type Entry, type ResponseHeader, decodeEntry, decodeResponse } from '../protocol/decode.ts';
import { type RequestSpec, encodeRequest } from '../protocol/encode.ts';
import { Op, opName } from '../protocol/opcodes.ts';
import type { Transport } from './transport.ts';

/** Who asked: the client call and the path(s) it named, for error messages. */
export interface CallContext {
  syscall: string;
  path?: string;
  dest?: string;
  /** The transport epoch the ids in this request were handed out in (see Transport.epoch). */
  epoch?: number;
}

export interface Reply {
  header: ResponseHeader;
  slot: Buffer;
  /** Output data, for ops that asked for some (see ResponseFrame). */
  data: Buffer | null;
}

export class Rpc {
  readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Send one request; resolves with the reply when status is 0, rejects with ErrnoError otherwise. */
  async call(spec: RequestSpec, ctx: CallContext): Promise<Reply> {
    let frame;
    try {
      frame = encodeRequest(spec);
    } catch (err) {
      throw err instanceof ErrnoError ? this.#retag(err, ctx) : err;
    }
    let response;
    try {
      response = await this.transport.call(frame, ctx.epoch);
    } catch (err) {
      throw err instanceof ErrnoError ? this.#retag(err, ctx) : err;
    }
    const header = this.#decode(() => decodeResponse(response.slot));
    if (header.status !== 0) {
      throw new ErrnoError(-header.status, opName(spec.op), ctx.path, { syscall: ctx.syscall, dest: ctx.dest });
    }
    return { header, slot: response.slot, data: response.data };
  }

  /** Send a request whose reply is an entry; the caller owns one lookup of the node (see forget). */
  async entry(spec: RequestSpec, ctx: CallContext): Promise<Entry> {
    const reply = await this.call(spec, ctx);
    return this.#decode(() => decodeEntry(reply.slot));
  }

  /**
   * Drop one lookup of `node` without waiting: nothing the caller does depends on it, and a failure (the
   * connection going away, which drops every lookup anyway) is not the caller's to handle.
   */
  forget(node: bigint): void {
    this.call({ op: Op.FORGET, node, arg64: 1 }, { syscall: 'forget' }).catch(() => {});
  }

  /** Decode with `fn`; a ProtocolError closes the transport before it propagates. */
  decode<T>(fn: () => T): T {
    return this.#decode(fn);
  }

  #decode<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ProtocolError) this.transport.close().catch(() => {});
      throw err;
    }
  }

  // Validation errors name the protocol op and the string that failed; the caller wants its own call and path.
  #retag(err: ErrnoError, ctx: CallContext): ErrnoError {
    const options = { syscall: ctx.syscall, dest: ctx.dest, cause: err };
    return new ErrnoError(err.errno, err.op, ctx.path ?? err.path, options);
  }
}

/** True when `err` is an ErrnoError with this errno. */
export function isErrno(err: unknown, errnoValue: number): err is ErrnoError {
  return err instanceof ErrnoError && err.errno === errnoValue;
}

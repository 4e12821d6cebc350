// Incremental parser of the stream transport's response bytes: a 512-byte slot, then `len` bytes of output
// when the request asked for output and succeeded (docs/protocol.md, "stream"). Input may arrive split at any
// byte or with many responses in one chunk. Everything here is peer-controlled: lengths are checked against
// what the request allowed before any byte is waited for, and a violation throws ProtocolError.
import { ProtocolError } from '../errors.ts';
import { decodeResponse } from '../protocol/decode.ts';
import { SLOT_SIZE } from '../protocol/layout.ts';

/** A complete response: its id, slot and output bytes (see ResponseFrame for when data is null). */
export interface ParsedResponse {
  id: bigint;
  slot: Buffer;
  data: Buffer | null;
}

/**
 * Output bytes that follow a response slot on a stream. Only a successful response to a request with
 * outLen > 0 carries them; an error carries none, and neither does a size query (outLen 0, where `len` is the
 * size needed, not bytes sent). Returns null when no data follows.
 */
export function streamDataLength(status: number, len: number, outLen: number): number | null {
  if (outLen === 0 || status !== 0) return null;
  if (len > outLen) throw new ProtocolError(`response len ${len} exceeds the ${outLen} bytes asked for`);
  return len;
}

/**
 * `outLenOf(id)` returns the outLen of the outstanding request with that id, or undefined if there is none;
 * `onResponse` is called synchronously for each complete response, in stream order, so the caller can retire
 * the id before the next response is matched (a duplicate reply is then an unknown id).
 */
export class ResponseParser {
  readonly #outLenOf: (id: bigint) => number | undefined;
  readonly #onResponse: (response: ParsedResponse) => void;
  #chunks: Buffer[] = [];
  #head = 0; // bytes of #chunks[0] already consumed
  #buffered = 0; // bytes available across #chunks
  #pending: { id: bigint; slot: Buffer; dataLen: number } | null = null;
  #failed = false;
  /** Id of the response being parsed when the last error was thrown, if the slot got that far. */
  culpritId: bigint | null = null;

  constructor(outLenOf: (id: bigint) => number | undefined, onResponse: (response: ParsedResponse) => void) {
    this.#outLenOf = outLenOf;
    this.#onResponse = onResponse;
  }

  /** Bytes received but not yet part of a complete response. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Feed bytes; throws ProtocolError on a violation, after which the parser refuses further input. */
  push(chunk: Buffer): void {
    if (this.#failed) throw new ProtocolError('response stream already failed');
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    try {
      this.#drain();
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  #drain(): void {
    for (;;) {
      if (this.#pending === null) {
        if (this.#buffered < SLOT_SIZE) return;
        this.#pending = this.#header(this.#take(SLOT_SIZE, true));
      }
      const { id, slot, dataLen } = this.#pending;
      if (this.#buffered < dataLen) return;
      const data = dataLen < 0 ? null : this.#take(dataLen, false);
      this.#pending = null;
      this.#onResponse({ id, slot, data });
    }
  }

  #header(slot: Buffer): { id: bigint; slot: Buffer; dataLen: number } {
    this.culpritId = null;
    const header = decodeResponse(slot);
    const outLen = this.#outLenOf(header.id);
    if (outLen === undefined) throw new ProtocolError(`response for unknown request id ${header.id}`);
    this.culpritId = header.id;
    const dataLen = streamDataLength(header.status, header.len, outLen);
    return { id: header.id, slot, dataLen: dataLen ?? -1 };
  }

  // Take n buffered bytes. A slot is always copied (it is small and lives on in decoded form); data is sliced
  // without a copy when it sits inside one chunk, since each chunk is a fresh buffer from the socket.
  #take(n: number, copy: boolean): Buffer {
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length - this.#head >= n) {
      const view = first.subarray(this.#head, this.#head + n);
      this.#advance(n);
      return copy ? Buffer.from(view) : view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) throw new ProtocolError('response parser ran out of buffered bytes');
      const step = Math.min(n - filled, chunk.length - this.#head);
      chunk.copy(out, filled, this.#head, this.#head + step);
      filled += step;
      this.#advance(step);
    }
    return out;
  }

  #advance(n: number): void {
    this.#head += n;
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (first !== undefined && this.#head === first.length) {
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}

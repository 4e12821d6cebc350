// A Transport that survives dom0 restarts: while the connection is down, new calls wait (up to a deadline) for the
// next connection instead of failing, and calls that were in flight when it dropped fail with DisconnectedError —
// their effect on dom0 is unknown, so only the caller can decide whether to repeat them.
import { DisconnectedError } from '../errors.ts';
import type { RequestFrame, ResponseFrame, Transport } from './transport.ts';

interface Waiter {
  frame: RequestFrame;
  epoch: number | undefined;
  resolve: (r: ResponseFrame) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class ReconnectingTransport implements Transport {
  readonly name: string;
  #current: Transport | null = null;
  readonly #waiting = new Set<Waiter>();
  readonly #waitMs: number;
  #closed = false;
  #epoch = 0;

  /** `waitMs`: how long a call waits for a connection before failing with DisconnectedError (0: fail at once). */
  constructor(name: string, waitMs: number) {
    this.name = name;
    this.#waitMs = waitMs;
  }

  /** Connections attached so far; see Transport.epoch. */
  get epoch(): number {
    return this.#epoch;
  }

  get connected(): boolean {
    return this.#current !== null;
  }

  /** Installs a fresh connection and releases the calls that were waiting for one. */
  attach(t: Transport): void {
    this.#current = t;
    this.#epoch++;
    for (const w of [...this.#waiting]) {
      this.#waiting.delete(w);
      clearTimeout(w.timer);
      this.call(w.frame, w.epoch).then(w.resolve, w.reject);
    }
  }

  /** The connection is gone: calls made from now on wait for attach(). */
  detach(): Transport | null {
    const t = this.#current;
    this.#current = null;
    return t;
  }

  call(frame: RequestFrame, epoch?: number): Promise<ResponseFrame> {
    if (this.#closed) return Promise.reject(new DisconnectedError(`${this.name}: closed`));
    if (epoch !== undefined && epoch !== this.#epoch) {
      // The ids in this request died with the connection they came from; the caller learns that the way it would
      // have had the request been in flight when the connection went.
      return Promise.reject(new DisconnectedError(`${this.name}: the connection this request's handle belonged to is gone`));
    }
    if (this.#current) return this.#current.call(frame);
    if (this.#waitMs <= 0) return Promise.reject(new DisconnectedError(`${this.name}: not connected`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        frame,
        epoch,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiting.delete(w);
          reject(new DisconnectedError(`${this.name}: dom0 did not come back within ${this.#waitMs} ms`));
        }, this.#waitMs),
      };
      this.#waiting.add(w);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiting) {
      clearTimeout(w.timer);
      w.reject(new DisconnectedError(`${this.name}: closed`));
    }
    this.#waiting.clear();
    const t = this.detach();
    if (t) await t.close();
  }
}

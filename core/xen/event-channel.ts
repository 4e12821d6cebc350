// Event channels: a pair of eventfds, one per direction. Notifications coalesce; the handler runs on the JS thread.
import { native, type NativeEventChannel } from './native.ts';

export interface EventChannelFds {
  /** Descriptor we are woken through. */
  rx: number;
  /** Descriptor we notify the peer through. */
  tx: number;
}

export class EventChannel {
  readonly #chan: NativeEventChannel;
  #closed = false;

  /** Takes ownership of both descriptors: close() closes them. */
  constructor(fds: EventChannelFds) {
    this.#chan = new native.EventChannel(fds.rx, fds.tx);
  }

  /**
   * Allocates an unbound channel for a guest: two eventfds, one per direction. `local` is our view and `remote`
   * dom0's (rx and tx swapped) — the same two descriptors, which are sent to dom0 as they are and stay open here:
   * our channel owns them.
   */
  static allocatePair(): { local: EventChannelFds; remote: EventChannelFds } {
    const toDom0 = native.createEventFd();
    const toGuest = native.createEventFd();
    return { local: { rx: toGuest, tx: toDom0 }, remote: { rx: toDom0, tx: toGuest } };
  }

  /** `handler(count)` runs once per wake-up, with how many notifications it coalesced. */
  bind(handler: (count: number) => void): void {
    this.#chan.bind(handler);
  }

  notify(): void {
    if (!this.#closed) this.#chan.notify();
  }

  mask(): void {
    this.#chan.mask();
  }

  /** Delivers, once, any notification that arrived while masked. */
  unmask(): void {
    this.#chan.unmask();
  }

  get pending(): number {
    return this.#chan.pending();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chan.close();
  }
}

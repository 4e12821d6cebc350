// The shared-memory Transport: requests go through a GuestRing, bulk data through granted pages.
import { DisconnectedError } from '../errors.ts';
import type { GuestRing } from '../ring/guest-ring.ts';
import type { RequestFrame, ResponseFrame, Transport } from './transport.ts';

export class RingTransport implements Transport {
  readonly name: string;
  readonly #ring: GuestRing;

  constructor(ring: GuestRing, name = 'ring') {
    this.#ring = ring;
    this.name = name;
  }

  call(frame: RequestFrame): Promise<ResponseFrame> {
    return this.#ring.call(frame.slot, frame.payload, frame.outLen);
  }

  async close(): Promise<void> {
    this.#ring.close(new DisconnectedError(`${this.name}: closed`));
  }
}

// The guest's end of an io/ring.h shared ring living in its own memory.
import { native, type NativeFrontRing } from './native.ts';
import type { DomainMemory } from './memory.ts';

export const RING_HEADER_SIZE = 64;

export class FrontRing {
  readonly #ring: NativeFrontRing;
  readonly slots: number;

  constructor(memory: DomainMemory, offset: number, slots: number) {
    this.#ring = new native.FrontRing(memory.handle, offset, slots);
    this.slots = slots;
  }

  /** Bytes a ring of `slots` entries occupies. */
  static bytes(slots: number, slotSize: number): number {
    return RING_HEADER_SIZE + slots * slotSize;
  }

  /**
   * Pushes and publishes one request at once, so dom0 can start on it while we prepare the next:
   * 0 the ring is full, 1 published, 2 published and dom0 asked to be notified.
   */
  pushPublish(slot: Buffer): 0 | 1 | 2 {
    return this.#ring.pushPublish(slot);
  }

  /** Copies as many unconsumed responses as fit into `buf` (whole slots); returns how many. */
  takeInto(buf: Buffer): number {
    return this.#ring.takeInto(buf);
  }

  /** Re-arms the response event; true if responses arrived meanwhile (take them instead of sleeping). */
  finalCheck(): boolean {
    return this.#ring.finalCheck();
  }

  /** Spins up to `micros` for a response; true when one is there. */
  poll(micros: number): boolean {
    return this.#ring.poll(micros);
  }


  get outstanding(): number {
    return this.#ring.outstanding;
  }
}

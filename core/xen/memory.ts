// A domain's memory, seen from inside the domain: the guest creates it, lays its grant table, ring and data
// pages out in it, and hands its descriptor to dom0, which can then touch it only through grants.
import { native, type NativeGuestMemory } from './native.ts';

export const PAGE_SIZE = 4096;

export class DomainMemory {
  readonly #mem: NativeGuestMemory;
  /** A view over all of the domain's memory; valid as long as this object is reachable. */
  readonly bytes: Buffer;

  constructor(pages: number, name = 'xenfs-domain') {
    this.#mem = new native.GuestMemory(pages, name);
    this.bytes = Buffer.from(this.#mem.buffer);
  }

  get fd(): number {
    return this.#mem.fd;
  }

  get pages(): number {
    return this.#mem.pages;
  }

  /** The descriptor is closed; the mapping stays until the memory is garbage-collected. */
  close(): void {
    this.#mem.close();
  }

  /** @internal for the other core/xen classes, which bind native objects to this memory. */
  get handle(): NativeGuestMemory {
    return this.#mem;
  }
}

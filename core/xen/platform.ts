// The seam between XenFS and the hypervisor primitives. Everything above core/xen (rings, the client, the server)
// reaches grant tables, event channels and domain memory through these interfaces, so a backend over real Xen
// (libxengnttab/libxengntshr for grants, libxenevtchn for event channels, libxenstore for the control channel)
// can replace the emulation here without touching them. `emulated` is the one-kernel implementation: domains are
// processes, memory is a sealed memfd, event channels are eventfds.
import { DomainMemory } from './memory.ts';
import { GrantTable } from './grant-table.ts';
import { EventChannel, type EventChannelFds } from './event-channel.ts';
import { FrontRing } from './shared-ring.ts';

/** A domain's own memory, page-granular. Real Xen: pages allocated by the domain's kernel. */
export interface DomainPages {
  readonly bytes: Buffer;
  readonly pages: number;
  /** Descriptor dom0 needs to reach the pages (emulation only; -1 on real Xen, where grants suffice). */
  readonly fd: number;
  close(): void;
}

/** The granting side. Real Xen: xengntshr / the guest kernel's grant table. */
export interface Granter {
  grant(ref: number, domid: number, frame: number, readOnly: boolean): void;
  grantMany(refs: Uint32Array, frames: Uint32Array, domid: number, readOnly: boolean): void;
  endAccess(ref: number): boolean;
  endMany(refs: Uint32Array): number;
}

/** One end of an event channel. Real Xen: an xenevtchn port. */
export interface EventPort {
  bind(handler: (count: number) => void): void;
  notify(): void;
  mask(): void;
  unmask(): void;
  close(): void;
}

/** The front end of an io/ring.h ring in the domain's own pages. */
export interface RingFront {
  pushPublish(slot: Buffer): 0 | 1 | 2;
  takeInto(buf: Buffer): number;
  finalCheck(): boolean;
  poll(micros: number): boolean;
  readonly outstanding: number;
}

/**
 * Where a guest's ring lies in its memory, and the descriptors that reach it: what a front end serving the ring
 * outside JavaScript (the native FUSE front end) needs. The receiver owns the descriptors.
 */
export interface RingLayout {
  memFd: number;
  memPages: number;
  ringOffset: number;
  slots: number;
  /** Page of tag 0's data buffer; tag t's 32 pages follow at dataFrame0 + 32 t. */
  dataFrame0: number;
  /** Grant reference of that page: the data pages were granted once, persistently, in the same order. */
  dataRef0: number;
  rxFd: number;
  txFd: number;
}

export interface GuestPlatform {
  allocate(pages: number, name: string): DomainPages;
  granter(memory: DomainPages, tableOffset: number, entries: number): Granter;
  /**
   * A fresh unbound channel: our port, what dom0 needs to bind the other end (descriptors here), and our own end's
   * [rx, tx] descriptors, owned by the port, for a front end that serves the ring outside JavaScript.
   */
  eventChannel(): { port: EventPort; remote: number[]; local: number[] };
  frontRing(memory: DomainPages, offset: number, slots: number): RingFront;
}

export const emulated: GuestPlatform = {
  allocate: (pages, name) => new DomainMemory(pages, name),
  granter: (memory, offset, entries) => new GrantTable(asEmulated(memory), offset, entries),
  eventChannel: () => {
    const { local, remote }: { local: EventChannelFds; remote: EventChannelFds } = EventChannel.allocatePair();
    return { port: new EventChannel(local), remote: [remote.rx, remote.tx], local: [local.rx, local.tx] };
  },
  frontRing: (memory, offset, slots) => new FrontRing(asEmulated(memory), offset, slots),
};

function asEmulated(memory: DomainPages): DomainMemory {
  if (!(memory instanceof DomainMemory)) throw new TypeError('the emulated platform needs its own DomainMemory');
  return memory;
}

// Grant tables (Xen v1 entries): the granting side and the mapping side.
import { native, type NativeGrantMap, type NativeGrantMapping, type NativeGrantTable } from './native.ts';
import type { DomainMemory } from './memory.ts';

/** The granter's table, living in its own memory at `offset` (page-aligned) with `entries` slots. */
export class GrantTable {
  readonly #table: NativeGrantTable;
  readonly entries: number;

  constructor(memory: DomainMemory, offset: number, entries: number) {
    this.#table = new native.GrantTable(memory.handle, offset, entries);
    this.entries = entries;
  }

  /** Grants `domid` access to one frame of our memory. Throws if the entry is in use. */
  grant(ref: number, domid: number, frame: number, readOnly: boolean): void {
    this.#table.grant(ref, domid, frame, readOnly);
  }

  grantMany(refs: Uint32Array, frames: Uint32Array, domid: number, readOnly: boolean): void {
    this.#table.grantMany(refs, frames, domid, readOnly);
  }

  /** Revokes a grant. False while the grantee still has it mapped: the page must not be reused yet. */
  endAccess(ref: number): boolean {
    return this.#table.endAccess(ref);
  }

  /** Revokes many; returns how many are still mapped by the grantee. */
  endMany(refs: Uint32Array): number {
    return this.#table.endMany(refs);
  }
}

export interface GrantMapOptions {
  /** The mapping domain's id; grants made out to another domain are refused. */
  domid?: number;
  /** Most pages this mapper holds mapped at once. */
  maxMapped?: number;
}

/**
 * The grantee's view: maps references granted by one domain. The server does this inside its native engine; this
 * class is for tools and tests. Mappings are reached only through copies, so no JavaScript view can outlive one.
 */
export class GrantMap {
  readonly #map: NativeGrantMap;

  constructor(memFd: number, memPages: number, tableOffset: number, entries: number, opts: GrantMapOptions = {}) {
    this.#map = new native.GrantMap(memFd, memPages, tableOffset, entries, opts);
  }

  /** Throws an Error with `.errno` (EPERM, EINVAL, EACCES, ENOBUFS) when any reference is refused. */
  map(refs: number[], writable: boolean): NativeGrantMapping {
    return this.#map.map(refs, writable);
  }

  unmap(id: number): void {
    this.#map.unmap(id);
  }

  get mapped(): number {
    return this.#map.mapped;
  }
}

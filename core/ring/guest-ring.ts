// The guest's side of one shared-ring connection: its memory laid out as grant table, ring and per-request data
// buffers, the event channel, and the request loop. Bytes in, bytes out: it knows slots, grants and
// notifications, not what the requests mean (beyond where the segment fields sit).
import { DisconnectedError } from '../errors.ts';
import { dupFd } from '../xen/control-socket.ts';
import { PAGE_SIZE } from '../xen/memory.ts';
import { FrontRing } from '../xen/shared-ring.ts';
import {
  emulated, type DomainPages, type EventPort, type GuestPlatform, type Granter, type RingFront, type RingLayout,
} from '../xen/platform.ts';

export const SLOT_SIZE = 512;
const SEGS_OFFSET = 64;
const NSEGS_OFFSET = 9;
const MAX_SEGS = 32;
const DOM0 = 0;

export interface GuestRingOptions {
  /** Ring entries: a power of two, 8..256. Also the most requests in flight. */
  slots?: number;
  /** Microseconds to spin for responses after publishing, before sleeping on the event channel (0: never). */
  pollMicros?: number;
  name?: string;
  /**
   * Persistent grants (Xen's feature-persistent, default true): data pages are granted to dom0 once, writable,
   * for the life of the ring, instead of granted and revoked around every request.
   */
  persistent?: boolean;
  /** The hypervisor primitives; the one-kernel emulation by default. */
  platform?: GuestPlatform;
}

/** What dom0 needs to map this ring: sent in the hello message, with `memFd` and the remote event channel fds. */
export interface GuestRingSetup {
  memPages: number;
  grantTable: { offset: number; entries: number };
  ringRefs: number[];
  ringSlots: number;
}

/** A ring handed over to a front end that serves it outside JavaScript. */
export type RingHandover = RingLayout;

export interface RingReply {
  slot: Buffer;
  /** Output bytes the response says were written (`len` at offset 12), copied out of the granted pages. */
  data: Buffer | null;
}

interface Pending {
  tag: number;
  nrefs: number;
  outLen: number;
  resolve: (r: RingReply) => void;
  reject: (e: Error) => void;
}

interface Queued {
  slot: Buffer;
  payload: Buffer | null;
  outLen: number;
  resolve: (r: RingReply) => void;
  reject: (e: Error) => void;
}

const pagesFor = (bytes: number): number => Math.ceil(bytes / PAGE_SIZE);

/**
 * Layout (pages): [grant table][ring][data: slots × 32 pages]. Each in-flight request owns one tag, and a tag
 * owns 32 contiguous data frames and the 32 grant references that name them, so a request's buffer is one
 * contiguous run that dom0 maps with a single mmap.
 */
export class GuestRing {
  readonly memory: DomainPages;
  readonly setup: GuestRingSetup;
  readonly #grants: Granter;
  readonly #ring: RingFront;
  readonly #evtchn: EventPort;
  readonly #remoteFds: number[];
  readonly #localFds: number[];
  readonly #ringOffset: number;
  readonly #dataFrame0: number;
  readonly #dataRef0: number;
  readonly #freeTags: number[] = [];
  /** Where responses are copied off the ring, a ring's worth at a time. */
  readonly #scratch: Buffer;
  readonly #pending = new Map<number, Pending>();
  readonly #queue: Queued[] = [];
  readonly #pollMicros: number;
  readonly persistent: boolean;
  #nextId = 1;
  #flushScheduled = false;
  #retryScheduled = false;
  #armScheduled = false;
  #closed: Error | null = null;
  /** Tags whose grants dom0 still held when we tried to revoke them; retried before reuse. */
  readonly #stuckTags: number[] = [];

  constructor(opts: GuestRingOptions = {}) {
    const slots = opts.slots ?? 64;
    this.#pollMicros = opts.pollMicros ?? 50;
    const ringPages = pagesFor(FrontRing.bytes(slots, SLOT_SIZE));
    const dataPages = slots * MAX_SEGS;
    const entries = ringPages + dataPages;
    const tablePages = pagesFor(entries * 8);
    const memPages = tablePages + ringPages + dataPages;
    const platform = opts.platform ?? emulated;
    this.memory = platform.allocate(memPages, opts.name ?? 'xenfs-guest');
    this.#grants = platform.granter(this.memory, 0, entries);
    const ringOffset = tablePages * PAGE_SIZE;
    this.#ring = platform.frontRing(this.memory, ringOffset, slots);
    this.#ringOffset = ringOffset;
    // The ring's own pages are granted like any other: refs 0..ringPages-1.
    const ringRefs: number[] = [];
    for (let i = 0; i < ringPages; i++) {
      this.#grants.grant(i, DOM0, tablePages + i, false);
      ringRefs.push(i);
    }
    this.#dataFrame0 = tablePages + ringPages;
    this.#dataRef0 = ringPages;
    for (let t = slots - 1; t >= 0; t--) this.#freeTags.push(t);
    this.#scratch = Buffer.alloc(slots * SLOT_SIZE);
    this.persistent = opts.persistent ?? true;
    if (this.persistent) {
      const refs = new Uint32Array(dataPages);
      const frames = new Uint32Array(dataPages);
      for (let i = 0; i < dataPages; i++) {
        refs[i] = this.#dataRef0 + i;
        frames[i] = this.#dataFrame0 + i;
      }
      this.#grants.grantMany(refs, frames, DOM0, false);
    }
    const chan = platform.eventChannel();
    this.#evtchn = chan.port;
    this.#remoteFds = chan.remote;
    this.#localFds = chan.local;
    this.#evtchn.bind(() => this.#drain());
    this.setup = { memPages, grantTable: { offset: 0, entries }, ringRefs, ringSlots: slots };
  }

  /** Descriptors for dom0: [memory, guest→dom0 eventfd, dom0→guest eventfd]. Still ours after sending. */
  get remoteFds(): number[] {
    return [this.memory.fd, ...this.#remoteFds];
  }

  /** Sends dom0 a notification without publishing anything. */
  kick(): void {
    this.#evtchn.notify();
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Sends one request slot. `payload` (when set) goes in read-only granted pages; `outLen` bytes of writable
   * pages are granted for the output. Resolves with the response slot and the output bytes.
   */
  call(slot: Buffer, payload: Buffer | null, outLen: number): Promise<RingReply> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (slot.length !== SLOT_SIZE) return Promise.reject(new RangeError('a request slot is 512 bytes'));
    const bytes = payload ? payload.length : outLen;
    if (bytes > MAX_SEGS * PAGE_SIZE) return Promise.reject(new RangeError('at most 128 KiB per request'));
    return new Promise<RingReply>((resolve, reject) => {
      this.#queue.push({ slot, payload, outLen, resolve, reject });
      this.#pump();
    });
  }

  /** Fails every outstanding and queued call with `reason` and stops. The memory stays mapped until collected. */
  close(reason: Error): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#evtchn.close();
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
    for (const q of this.#queue.splice(0)) q.reject(reason);
    this.memory.close();
  }

  /**
   * Gives the ring up to a front end outside JavaScript: nothing may be in flight. The caller gets duplicates of
   * the descriptors; this object is closed (its calls fail) and stops watching the event channel, whose
   * notifications are the new owner's from now on.
   */
  handOver(): RingHandover {
    if (this.#closed) throw this.#closed;
    if (this.#pending.size > 0 || this.#queue.length > 0) throw new Error('a ring with requests in flight cannot be handed over');
    // Only persistently granted pages can be used without this object's grant table bookkeeping.
    if (!this.persistent) throw new Error('only a ring with persistent grants can be handed over');
    const [rx, tx] = this.#localFds as [number, number];
    const h: RingHandover = {
      memFd: dupFd(this.memory.fd), memPages: this.memory.pages, ringOffset: this.#ringOffset,
      slots: this.setup.ringSlots, dataFrame0: this.#dataFrame0, dataRef0: this.#dataRef0,
      rxFd: dupFd(rx), txFd: dupFd(tx),
    };
    this.close(new DisconnectedError('the ring was handed to the native front end'));
    return h;
  }

  #pump(): void {
    this.#retryStuck();
    let notify = false;
    // A tag stands for one ring slot as well as one buffer: while a tag is free, so is a slot.
    while (this.#queue.length > 0 && this.#freeTags.length > 0) {
      if (this.#send(this.#queue.shift() as Queued)) notify = true;
    }
    if (notify) this.#evtchn.notify();
    // Waiting only for grants dom0 still holds: no response will come to pump again, so look again shortly.
    if (this.#queue.length > 0 && this.#freeTags.length === 0 && this.#pending.size === 0 && this.#stuckTags.length > 0 &&
        !this.#retryScheduled) {
      this.#retryScheduled = true;
      setTimeout(() => {
        this.#retryScheduled = false;
        if (!this.#closed) this.#pump();
      }, 1);
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Puts one request on the ring; true when dom0 asked to be notified. The caller made sure a tag is free. */
  #send(q: Queued): boolean {
    const tag = this.#freeTags.pop() as number;
    // Ids are 2^53-safe integers written as two u32 halves: cheaper than BigInt on the hot path.
    const id = this.#nextId++;
    const nrefs = this.#grantBuffer(tag, q);
    q.slot.writeUInt32LE(id >>> 0, 0);
    q.slot.writeUInt32LE(Math.floor(id / 0x100000000), 4);
    this.#pending.set(id, { tag, nrefs, outLen: q.outLen, resolve: q.resolve, reject: q.reject });
    // Published at once, not at the end of the turn: dom0, polling, starts on it while we build the next one, so
    // its work overlaps ours. Notifying is what costs, and dom0 asks for that only when it is asleep.
    return this.#ring.pushPublish(q.slot) === 2;
  }

  #grantBuffer(tag: number, q: Queued): number {
    const bytes = q.payload ? q.payload.length : q.outLen;
    const n = pagesFor(bytes);
    q.slot[NSEGS_OFFSET] = n;
    if (n === 0) return 0;
    const frame0 = this.#dataFrame0 + tag * MAX_SEGS;
    const ref0 = this.#dataRef0 + tag * MAX_SEGS;
    if (q.payload) q.payload.copy(this.memory.bytes, frame0 * PAGE_SIZE);
    for (let i = 0; i < n; i++) q.slot.writeUInt32LE(ref0 + i, SEGS_OFFSET + 4 * i);
    if (this.persistent) return 0; // granted once at setup: nothing to grant or revoke per request
    const refs = new Uint32Array(n);
    const frames = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      refs[i] = ref0 + i;
      frames[i] = frame0 + i;
    }
    // Payload pages are granted read-only: dom0 has no business writing into them.
    this.#grants.grantMany(refs, frames, DOM0, q.payload !== null);
    return n;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed) return;
    // A short spin catches a fast reply without the cost of a wake-up through the event channel.
    if (this.#pollMicros > 0 && this.#ring.outstanding > 0 && this.#ring.poll(this.#pollMicros)) this.#takeAll();
    this.#scheduleArm();
  }

  /** Consumes every response there is, without re-arming the event: more may be polled for first. */
  #takeAll(): void {
    const scratch = this.#scratch;
    for (;;) {
      if (this.#closed) return;
      const n = this.#ring.takeInto(scratch);
      if (n === 0) break;
      for (let i = 0; i < n; i++) this.#complete(scratch, i * SLOT_SIZE);
    }
    if (this.#queue.length > 0) this.#pump();
  }

  /**
   * Re-arms rsp_event only once JavaScript has run everything the responses set off (setImmediate runs after the
   * microtasks that issue follow-up requests and poll for them): arming earlier would have dom0 notify, and wake
   * us, for responses we were about to poll for anyway. A pending immediate keeps the loop from blocking meanwhile.
   */
  #scheduleArm(): void {
    if (this.#armScheduled || this.#ring.outstanding === 0) return;
    this.#armScheduled = true;
    setImmediate(() => {
      this.#armScheduled = false;
      if (this.#closed) return;
      // The canonical check: arm, look again, and only sleep if nothing slipped in between.
      if (this.#ring.finalCheck()) {
        this.#takeAll();
        this.#scheduleArm();
      }
    });
  }

  /** Event-channel wake-up. */
  #drain(): void {
    this.#takeAll();
    this.#scheduleArm();
  }

  #complete(batch: Buffer, at: number): void {
    const id = batch.readUInt32LE(at) + batch.readUInt32LE(at + 4) * 0x100000000;
    const p = this.#pending.get(id);
    if (!p) return; // dom0 is trusted, but a stray id must not take down the guest either
    this.#pending.delete(id);
    let data: Buffer | null = null;
    const status = batch.readInt32LE(at + 8);
    const len = batch.readUInt32LE(at + 12);
    if (p.outLen > 0 && status === 0) {
      const start = (this.#dataFrame0 + p.tag * MAX_SEGS) * PAGE_SIZE;
      data = Buffer.from(this.memory.bytes.subarray(start, start + Math.min(len, p.outLen)));
    }
    this.#releaseTag(p.tag, p.nrefs);
    // The caller keeps its slot; a slice of Node's buffer pool is far cheaper than an ArrayBuffer per batch.
    const slot = Buffer.allocUnsafe(SLOT_SIZE);
    batch.copy(slot, 0, at, at + SLOT_SIZE);
    p.resolve({ slot, data });
  }

  #releaseTag(tag: number, nrefs: number): void {
    if (nrefs > 0) {
      const refs = new Uint32Array(nrefs);
      for (let i = 0; i < nrefs; i++) refs[i] = this.#dataRef0 + tag * MAX_SEGS + i;
      // A page still mapped by dom0 must not be reused for another request's data.
      if (this.#grants.endMany(refs) > 0) {
        this.#stuckTags.push(tag * 64 + nrefs);
        return;
      }
    }
    this.#freeTags.push(tag);
  }

  #retryStuck(): void {
    if (this.#stuckTags.length === 0) return;
    const stuck = this.#stuckTags.splice(0);
    for (const packed of stuck) this.#releaseTag(Math.floor(packed / 64), packed % 64);
  }
}

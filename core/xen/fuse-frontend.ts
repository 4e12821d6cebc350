// The native front end's thread (native/src/fuse-frontend.hpp): it serves one mounted FUSE connection by putting
// each request on the guest's ring to dom0 from C++, so no JavaScript runs per request. core/frontend sets it up,
// hands it the ring of every (re)connection, and stops it.
import { native, type NativeFrontendStats, type NativeFuseFrontend, type NativeRingLink } from './native.ts';

export interface FuseFrontendOptions {
  /** Passthrough was negotiated: ask dom0 for a backing file at every open. */
  passthrough: boolean;
  /** The largest write the connection was negotiated with (≤ 128 KiB, one ring request). */
  maxWrite?: number;
  /** How long the kernel may trust a looked-up name and a file's attributes. 0: ask dom0 every time. */
  entryTimeoutMs?: number;
  attrTimeoutMs?: number;
  /** How long requests wait for dom0 while no ring is attached, then fail with EIO. */
  waitMs?: number;
  /** Spin this long for a response before sleeping on the event channel. */
  pollMicros?: number;
}

export type FrontendStats = NativeFrontendStats;
export type FrontendRingLink = NativeRingLink;

export interface FrontendExit {
  /** 0 when stopped or unmounted. */
  errno: number;
  why: string;
}

export class FuseFrontend {
  readonly #fe: NativeFuseFrontend;
  /** Settles once the thread has stopped serving, for whatever reason. */
  readonly exited: Promise<FrontendExit>;

  /** Starts serving `fd` (a mounted connection whose INIT is answered); the caller keeps its own descriptor. */
  constructor(fd: number, opts: FuseFrontendOptions) {
    let done!: (e: FrontendExit) => void;
    this.exited = new Promise((resolve) => (done = resolve));
    this.#fe = new native.FuseFrontend({ fd, ...opts }, (errno, why) => done({ errno, why }));
  }

  /** Serves requests over this ring from now on (a fresh connection's: nothing outstanding on it). */
  attach(link: FrontendRingLink): void {
    this.#fe.attach(link);
  }

  /** dom0 went away: requests in flight fail with EIO; new ones wait up to waitMs for the next attach. */
  detach(): void {
    this.#fe.detach();
  }

  /** Stops the thread and waits for it. Idempotent; the mount stays until the caller detaches it. */
  stop(): void {
    this.#fe.stop();
  }

  /** Null once stopped. */
  stats(): FrontendStats | null {
    return this.#fe.stats();
  }
}

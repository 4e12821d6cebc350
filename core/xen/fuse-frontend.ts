// The native front end's thread (native/src/fuse-frontend.hpp): it serves one mounted FUSE connection by putting
// each request on the guest's ring to dom0 from C++, so no JavaScript runs per request. core/frontend sets it up,
// hands it the ring of every (re)connection, and stops it.
import {
  native, type NativeFrontendOptions, type NativeFrontendStats, type NativeFuseFrontend, type NativeRingLink,
} from './native.ts';

export type FuseFrontendOptions = Omit<NativeFrontendOptions, 'fd'>;

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

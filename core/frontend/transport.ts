// The contract between the guest client (GuestFs) and whatever carries its requests to dom0: a stream socket
// (StreamTransport), or a shared ring with granted pages. The client encodes slots; the transport owns ids,
// segments, flow control and the connection. Imports point one way: transports never know GuestFs.

/** One request as the client hands it over. */
export interface RequestFrame {
  /**
   * The 512-byte request slot with id (bytes 0..7) and nsegs/segs left 0. The transport writes the id (and, on a
   * ring, the segments) into this buffer: it is the transport's until the call settles.
   */
  slot: Buffer;
  /** The external payload when F_PAYLOAD_EXT is set, else null. Must not be modified until the call settles. */
  payload: Buffer | null;
  /** Bytes of output data the op may return (its request `len`), 0 if it returns none. */
  outLen: number;
}

/** One response. */
export interface ResponseFrame {
  /** The 512-byte response slot, already matched to the request by id. Decoding it is the caller's job. */
  slot: Buffer;
  /**
   * The output bytes (length = the response's len, never more than the request's outLen) when the request had
   * outLen > 0 and succeeded; null otherwise. Owned by the caller.
   */
  data: Buffer | null;
}

/**
 * Carries requests to dom0 and their responses back. Calls may be issued concurrently and complete in any
 * order. A broken contract by the peer rejects with ProtocolError and closes the transport; a lost connection
 * rejects every outstanding call with DisconnectedError.
 */
export interface Transport {
  /** For logs and errors, e.g. 'stream:/run/xenfs/guest.sock'. */
  readonly name: string;
  /**
   * Transports that reconnect count their connections here. Ids the server handed out (file handles, nodes)
   * belong to one connection: a call that passes the epoch it got them in is refused with DisconnectedError,
   * without being sent, once the transport has moved on — a restarted dom0 may have given the same id to another file.
   */
  readonly epoch?: number;
  call(frame: RequestFrame, epoch?: number): Promise<ResponseFrame>;
  /** Idempotent. Rejects outstanding calls with DisconnectedError and releases the connection. */
  close(): Promise<void>;
}

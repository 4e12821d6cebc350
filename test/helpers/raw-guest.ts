// A guest built by hand from the ring primitives, for tests that must misbehave: it can send slots the client
// library would refuse to encode, and scribble over its own ring and grant table.
import { ControlConnection, type ControlMessage } from '../../core/xen/control-socket.ts';
import { GuestRing } from '../../core/ring/guest-ring.ts';
import { ALL_FEATURES, Feature, Op } from '../../core/protocol/opcodes.ts';
import { ReqOff, RspOff, SLOT_SIZE } from '../../core/protocol/layout.ts';

export interface RawReply {
  status: number;
  len: number;
  slot: Buffer;
  data: Buffer | null;
}

export interface RawRequest {
  op: number;
  /** Request flags (RequestFlag bits). */
  flags?: number;
  node?: bigint | number;
  fh?: bigint | number;
  offset?: number;
  arg64?: bigint | number;
  len?: number;
  arg32a?: number;
  arg32b?: number;
  /** Raw bytes of the first and second string, sent as they are (NUL, '/', any length up to the inline area). */
  name1?: Buffer | string;
  name2?: Buffer | string;
  /** Raw bytes after the strings, inline as well (a lock's FileLock, a setattr payload). */
  data?: Buffer;
  /** Override the declared lengths, to lie about them. */
  name1Len?: number;
  payloadLen?: number;
}

export class RawGuest {
  readonly ring: GuestRing;
  readonly conn: ControlConnection;
  closed = false;

  private constructor(ring: GuestRing, conn: ControlConnection) {
    this.ring = ring;
    this.conn = conn;
    conn.on('close', () => {
      this.closed = true;
    });
  }

  static async connect(controlPath: string, domain: string, secret: string): Promise<RawGuest> {
    const conn = ControlConnection.connect(controlPath);
    const messages: ControlMessage[] = [];
    let wake: (() => void) | null = null;
    conn.on('message', (m) => {
      messages.push(m);
      wake?.();
    });
    const next = async (): Promise<unknown> => {
      while (messages.length === 0) await new Promise<void>((r) => (wake = r));
      return (messages.shift() as ControlMessage).body;
    };
    await next(); // InitWait
    const ring = new GuestRing({ name: `raw-${domain}`, persistent: false });
    conn.send(
      // Grants are revoked after each request (persistent: false), so dom0 must not keep them mapped.
      { type: 'hello', domain, secret, version: 1, features: ALL_FEATURES & ~Feature.PERSISTENT_GRANTS, transport: 'ring',
        ring: ring.setup },
      ring.remoteFds,
    );
    const welcome = (await next()) as { type: string; message?: string };
    if (welcome.type !== 'welcome') throw new Error(`refused: ${welcome.message}`);
    conn.removeAllListeners('message');
    return new RawGuest(ring, conn);
  }

  /** Sends a hand-made slot. Strings go inline, unchecked. */
  async call(r: RawRequest): Promise<RawReply> {
    return this.#dispatch(r).reply;
  }

  /**
   * As call(), and says which id the request went out with: what an INTERRUPT names. Throws when the ring has no
   * free slot (the request then waits unnumbered in the queue).
   */
  send(r: RawRequest): { id: bigint; reply: Promise<RawReply> } {
    const { slot, reply } = this.#dispatch(r);
    // The ring numbers a request as it publishes it, at once while it has a free slot.
    const id = slot.readBigUInt64LE(ReqOff.ID);
    if (id === 0n) {
      reply.catch(() => {});
      throw new Error('the ring is full: the request has no id yet');
    }
    return { id, reply };
  }

  #dispatch(r: RawRequest): { slot: Buffer; reply: Promise<RawReply> } {
    const slot = Buffer.alloc(SLOT_SIZE);
    const n1 = typeof r.name1 === 'string' ? Buffer.from(r.name1) : (r.name1 ?? Buffer.alloc(0));
    const n2 = typeof r.name2 === 'string' ? Buffer.from(r.name2) : (r.name2 ?? Buffer.alloc(0));
    const data = r.data ?? Buffer.alloc(0);
    slot.writeUInt8(r.op, ReqOff.OP);
    slot.writeUInt16LE(r.flags ?? 0, ReqOff.FLAGS);
    slot.writeBigUInt64LE(BigInt(r.node ?? 0), ReqOff.NODE);
    slot.writeBigUInt64LE(BigInt(r.fh ?? 0), ReqOff.FH);
    slot.writeBigUInt64LE(BigInt(r.offset ?? 0), ReqOff.OFFSET);
    slot.writeBigUInt64LE(BigInt(r.arg64 ?? 0), ReqOff.ARG64);
    slot.writeUInt32LE(r.len ?? 0, ReqOff.LEN);
    slot.writeUInt32LE(r.arg32a ?? 0, ReqOff.ARG32A);
    slot.writeUInt32LE(r.arg32b ?? 0, ReqOff.ARG32B);
    slot.writeUInt16LE(r.name1Len ?? n1.length, ReqOff.NAME1_LEN);
    slot.writeUInt16LE(n2.length, ReqOff.NAME2_LEN);
    const inline = Buffer.concat([n1, n2, data]).subarray(0, SLOT_SIZE - ReqOff.INLINE);
    inline.copy(slot, ReqOff.INLINE);
    slot.writeUInt32LE(r.payloadLen ?? n1.length + n2.length + data.length, ReqOff.PAYLOAD_LEN);
    const reply = this.ring.call(slot, null, r.len ?? 0).then((rsp) => ({
      status: rsp.slot.readInt32LE(8), len: rsp.slot.readUInt32LE(12), slot: rsp.slot, data: rsp.data,
    }));
    return { slot, reply };
  }

  /** WALK to `path` from the first export's root and OPEN it with `flags`: the handle. */
  async open(path: string, flags: number): Promise<bigint> {
    const walk = await this.call({ op: Op.WALK, node: 1, name1: path });
    if (walk.status !== 0) throw new Error(`WALK ${path}: ${walk.status}`);
    const open = await this.call({ op: Op.OPEN, node: walk.slot.readBigUInt64LE(RspOff.NODE), arg32a: flags });
    if (open.status !== 0) throw new Error(`OPEN ${path}: ${open.status}`);
    return open.slot.readBigUInt64LE(RspOff.FH);
  }

  /**
   * Sends a fuse-attach carrying `fds`, mounted on export root node `root` (sent as it is, so a test can send a
   * bad one), and resolves with dom0's answer.
   */
  fuseAttach(fds: number[], root: unknown): Promise<{ type: string; ok: boolean; code?: string; message?: string }> {
    return new Promise((resolve) => {
      const onMessage = (m: ControlMessage): void => {
        this.conn.off('message', onMessage);
        resolve(m.body as { type: string; ok: boolean; code?: string; message?: string });
      };
      this.conn.on('message', onMessage);
      this.conn.send({ type: 'fuse-attach', root }, fds);
    });
  }

  close(): void {
    this.conn.close();
    this.ring.close(new Error('raw guest closed'));
  }
}

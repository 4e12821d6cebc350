// A real stream-protocol peer for tests: a UNIX socket server that parses request slots (and their external
// payloads) off the wire and hands each to the test, which answers with whatever bytes it likes. It is the
// other end of the connection, not a mock of the code under test.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DecodedRequest, decodeRequest } from '../../core/protocol/decode.ts';
import { ReqOff, SLOT_SIZE } from '../../core/protocol/layout.ts';
import { RequestFlag } from '../../core/protocol/opcodes.ts';

export type RequestHandler = (req: DecodedRequest, socket: net.Socket) => void;

export interface StreamPeer {
  path: string;
  /** Sockets the peer accepted, in order. */
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** Split a byte stream into requests: slot, then payload_len bytes when F_PAYLOAD_EXT is set. */
export function requestReader(onRequest: (req: DecodedRequest) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < SLOT_SIZE) return;
      const ext = (buf.readUInt16LE(ReqOff.FLAGS) & RequestFlag.PAYLOAD_EXT) !== 0;
      const payloadLen = ext ? buf.readUInt32LE(ReqOff.PAYLOAD_LEN) : 0;
      if (buf.length < SLOT_SIZE + payloadLen) return;
      const slot = buf.subarray(0, SLOT_SIZE);
      const payload = ext ? buf.subarray(SLOT_SIZE, SLOT_SIZE + payloadLen) : null;
      buf = buf.subarray(SLOT_SIZE + payloadLen);
      onRequest(decodeRequest(slot, payload));
    }
  };
}

/** Start a peer on a fresh socket path; every accepted connection's requests go to `handler`. */
export async function startStreamPeer(handler: RequestHandler): Promise<StreamPeer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'xenfs-peer-'));
  const socketPath = path.join(dir, 'peer.sock');
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {}); // the client side may reset; tests assert on the client
    socket.on('data', requestReader((req) => handler(req, socket)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    path: socketPath,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

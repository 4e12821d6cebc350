// Control-channel messages (xenstore's role, docs/protocol.md "Connecting"): JSON bodies with descriptors riding
// along. The decoders here are pure and treat every body as hostile: they check each field's type and range and
// answer a ProtocolError naming the field.
import { ProtocolError } from '../errors.ts';

/** xenbus states, with Xen's numbering (xen/include/public/io/xenbus.h). */
export const XenbusState = {
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
} as const;
export type XenbusStateName = keyof typeof XenbusState;

export type TransportKind = 'ring' | 'unix' | 'tcp';

export interface RingLayout {
  memPages: number;
  grantTable: { offset: number; entries: number };
  ringRefs: number[];
  ringSlots: number;
}

export interface Hello {
  type: 'hello';
  domain: string;
  secret?: string;
  version: number;
  features: number;
  transport: TransportKind;
  ring?: RingLayout;
}

export interface ExportInfo {
  name: string;
  node: number;
  readOnly: boolean;
}

export interface Welcome {
  type: 'welcome';
  state: 'Connected';
  version: number;
  features: number;
  exports: ExportInfo[];
  limits: Record<string, number>;
  /** How dom0's administrator wants this guest's mounts to cache file data (the guest config's `cache`). */
  cache: 'none' | 'auto';
  stream?: { token: string; unixPath?: string; tcpPort?: number };
}

export interface Refusal {
  type: 'error';
  code: string;
  message: string;
}

export interface StateMessage {
  type: 'state';
  state: XenbusStateName;
  version?: number;
  features?: number;
}

/** A guest hands dom0 its mounted FUSE connection (the one descriptor riding with the message). */
export interface FuseAttach {
  type: 'fuse-attach';
  /** The export root the connection is mounted on (its node, as the welcome lists it): FUSE_ROOT_ID there. */
  root: number;
}

export const MAX_DOMAIN_NAME = 64;
export const MAX_SECRET = 256;
export const MAX_GRANT_ENTRIES = 65536;
export const MAX_MEM_PAGES = 1 << 18;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(o: Obj, key: string, min: number, max: number, where = 'hello'): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ProtocolError(`${where}.${key} must be an integer in ${min}..${max}`);
  }
  return v;
}

function ringLayout(v: unknown): RingLayout {
  if (!isObj(v)) throw new ProtocolError('hello.ring must be an object');
  const memPages = int(v, 'memPages', 1, MAX_MEM_PAGES, 'hello.ring');
  if (!isObj(v.grantTable)) throw new ProtocolError('hello.ring.grantTable must be an object');
  const offset = int(v.grantTable, 'offset', 0, memPages * 4096, 'hello.ring.grantTable');
  const entries = int(v.grantTable, 'entries', 1, MAX_GRANT_ENTRIES, 'hello.ring.grantTable');
  const ringSlots = int(v, 'ringSlots', 8, 256, 'hello.ring');
  if ((ringSlots & (ringSlots - 1)) !== 0) throw new ProtocolError('hello.ring.ringSlots must be a power of two');
  const refs = v.ringRefs;
  if (!Array.isArray(refs) || refs.length < 1 || refs.length > 64) {
    throw new ProtocolError('hello.ring.ringRefs must be an array of 1..64 grant references');
  }
  const ringRefs = refs.map((r, i) => {
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= entries) {
      throw new ProtocolError(`hello.ring.ringRefs[${i}] is not a grant reference`);
    }
    return r;
  });
  return { memPages, grantTable: { offset, entries }, ringRefs, ringSlots };
}

/** Decodes a guest's hello. Throws ProtocolError naming the first bad field. */
export function decodeHello(body: unknown): Hello {
  if (!isObj(body) || body.type !== 'hello') throw new ProtocolError('expected a hello message');
  const domain = body.domain;
  if (typeof domain !== 'string' || domain.length < 1 || domain.length > MAX_DOMAIN_NAME) {
    throw new ProtocolError(`hello.domain must be a name of 1..${MAX_DOMAIN_NAME} characters`);
  }
  const secret = body.secret;
  if (secret !== undefined && (typeof secret !== 'string' || secret.length > MAX_SECRET)) {
    throw new ProtocolError('hello.secret must be a string');
  }
  const version = int(body, 'version', 1, 0xffff);
  const features = int(body, 'features', 0, 0xffffffff);
  const transport = body.transport;
  if (transport !== 'ring' && transport !== 'unix' && transport !== 'tcp') {
    throw new ProtocolError("hello.transport must be 'ring', 'unix' or 'tcp'");
  }
  const hello: Hello = { type: 'hello', domain, version, features, transport };
  if (typeof secret === 'string') hello.secret = secret;
  if (transport === 'ring') hello.ring = ringLayout(body.ring);
  return hello;
}

/** Decodes dom0's answer to a hello: a Welcome, or a Refusal. */
export function decodeWelcome(body: unknown): Welcome | Refusal {
  if (!isObj(body)) throw new ProtocolError('expected a welcome or error message');
  if (body.type === 'error') {
    return { type: 'error', code: String(body.code ?? 'XENFS_ERR_PROTOCOL'), message: String(body.message ?? '') };
  }
  if (body.type !== 'welcome') throw new ProtocolError('expected a welcome message');
  const version = int(body, 'version', 1, 0xffff, 'welcome');
  const features = int(body, 'features', 0, 0xffffffff, 'welcome');
  if (!Array.isArray(body.exports)) throw new ProtocolError('welcome.exports must be an array');
  const exports = body.exports.map((e, i): ExportInfo => {
    if (!isObj(e) || typeof e.name !== 'string') throw new ProtocolError(`welcome.exports[${i}] is malformed`);
    return { name: e.name, node: int(e, 'node', 1, 0xffff, `welcome.exports[${i}]`), readOnly: e.readOnly === true };
  });
  const limits: Record<string, number> = {};
  if (isObj(body.limits)) for (const [k, v] of Object.entries(body.limits)) if (typeof v === 'number') limits[k] = v;
  // Only an explicit 'auto' turns caching on: an older dom0 that says nothing gets the one-copy default.
  const cache = body.cache === 'auto' ? 'auto' : 'none';
  const w: Welcome = { type: 'welcome', state: 'Connected', version, features, exports, limits, cache };
  if (isObj(body.stream) && typeof body.stream.token === 'string') {
    w.stream = { token: body.stream.token };
    if (typeof body.stream.unixPath === 'string') w.stream.unixPath = body.stream.unixPath;
    if (typeof body.stream.tcpPort === 'number') w.stream.tcpPort = body.stream.tcpPort;
  }
  return w;
}

/** Decodes a guest's fuse-attach; `exportCount` is how many exports its welcome listed. Throws ProtocolError. */
export function decodeFuseAttach(body: unknown, exportCount: number): FuseAttach {
  if (!isObj(body) || body.type !== 'fuse-attach') throw new ProtocolError('expected a fuse-attach message');
  if (exportCount < 1) throw new ProtocolError('fuse-attach needs an export to mount');
  return { type: 'fuse-attach', root: int(body, 'root', 1, exportCount, 'fuse-attach') };
}

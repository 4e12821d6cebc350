// The dom0 server's configuration: loaded from a YAML file (or JSON, which is YAML too), checked key by key,
// defaults filled in from config/defaults.json. Every error names the file, the key and, where the file gives
// one, the line (ConfigError). The sections of the event flow live in event-flow.ts and services.ts; the
// Reader and the YAML parsing in reader.ts.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.ts';
import { MAX_DOMAIN_NAME } from '../protocol/control.ts';
import { readEvents, readRedis } from './event-flow.ts';
import type { EventsConfig, RedisConfig } from './event-flow.ts';
import { Reader, parseConfigText } from './reader.ts';
import type { KeyLines } from './reader.ts';
import { readServices } from './services.ts';
import type { ServiceConfig } from './services.ts';
import defaults from '../../config/defaults.json' with { type: 'json' };

export type { EventsConfig, RedisConfig, RedisEndpoint } from './event-flow.ts';
export type { ServiceConfig } from './services.ts';
export type { KeyLines } from './reader.ts';

export interface Limits {
  /** Nodes (looked-up files) a guest may hold at once. */
  maxNodes: number;
  /** Open files and directories per guest. */
  maxHandles: number;
  /** Grant references dom0 maps for one guest at once. */
  maxMappedGrants: number;
  /** Bytes of read/write data in flight per guest before dom0 stops taking its requests. */
  maxBytesInFlight: number;
  /** Largest extended-attribute value. */
  maxXattrSize: number;
  /** Largest size a guest may grow one file to; writes, fallocate and truncate past it fail with EFBIG. */
  maxFileSize: number;
  /** Ring slots a guest may ask for: the most requests it has outstanding. */
  maxRingSlots: number;
  /** Grant-table entries a guest may declare. */
  maxGrantEntries: number;
  /** Microseconds dom0's ring thread polls for more requests before sleeping. */
  spinMicros: number;
  /** File locks a guest may hold (a range split in two counts twice); ENOLCK beyond. */
  maxLocks: number;
  /** Lock requests of a guest waiting to be granted at once; ENOLCK beyond. */
  maxLockWaiters: number;
}

export interface ExportConfig {
  name: string;
  path: string;
  readOnly: boolean;
  /**
   * 'passthrough' (default): a native front end reads and writes files through the kernel, straight to dom0's
   * page cache. 'dom0': every write to a file the guest may write goes through dom0, which then sees each one
   * (reads of files the guest may only read still pass through).
   */
  writes: 'passthrough' | 'dom0';
}

export interface IdRangeConfig {
  guest: number;
  host: number;
  count: number;
}

export interface GuestConfig {
  name: string;
  secret?: string;
  /** The uid the guest's process must connect as (peer credentials), when set. */
  uid?: number;
  exports: ExportConfig[];
  limits: Limits;
  /** Host ids dom0 acts as for this guest's file operations (ownership of what it creates, permission checks). */
  owner?: { uid: number; gid: number };
  /** Owners as the guest sees them, in user-namespace style ranges. */
  idMap?: { uid: IdRangeConfig[]; gid: IdRangeConfig[] };
  /**
   * How the guest's mounts cache file data, unless the guest's command line says otherwise: 'none' (one copy in
   * host memory, every read and write goes to dom0) or 'auto' (the front end's kernel page cache as well).
   */
  cache: 'none' | 'auto';
}

export interface ServerConfig {
  file: string;
  stateDir: string;
  /** Stream transports (for hosts without shared memory and for comparison): off unless configured. */
  listen: { unix: boolean; tcp: { host: string; port: number } | null };
  workers: number;
  guests: GuestConfig[];
  redis: RedisConfig;
  events: EventsConfig;
  /** Plugin services, in the order the file lists them (disabled ones included). */
  services: ServiceConfig[];
  /**
   * Where each key is written in `file`, for errors about values checked after loading (a service's config,
   * once its plugin says what it should be). Empty when the config did not come from a multi-line file.
   */
  lines: KeyLines;
}

const MAX_ID = 0xfffffffe;

function readRanges(r: Reader, v: unknown, key: string): IdRangeConfig[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) r.fail(key, 'must be an array of { guest, host, count }');
  return v.map((e, i) => {
    const o = r.strictObj(e, `${key}[${i}]`, ['guest', 'host', 'count']);
    const range = {
      guest: r.int(o.guest, `${key}[${i}].guest`, 0, MAX_ID),
      host: r.int(o.host, `${key}[${i}].host`, 0, MAX_ID),
      count: r.int(o.count, `${key}[${i}].count`, 1, MAX_ID),
    };
    if (range.guest + range.count - 1 > MAX_ID || range.host + range.count - 1 > MAX_ID) {
      r.fail(`${key}[${i}]`, 'runs past the largest id');
    }
    return range;
  });
}

const LIMIT_RANGES: Record<keyof Limits, [number, number]> = {
  maxNodes: [16, 1 << 24],
  maxHandles: [4, 1 << 20],
  maxMappedGrants: [64, 1 << 20],
  maxBytesInFlight: [128 * 1024, 1 << 30],
  maxXattrSize: [0, 65536],
  maxFileSize: [1 << 20, Number.MAX_SAFE_INTEGER],
  maxRingSlots: [8, 256],
  maxGrantEntries: [64, 65536],
  spinMicros: [0, 10000],
  maxLocks: [16, 1 << 20],
  maxLockWaiters: [1, 65536],
};

function readLimits(r: Reader, v: unknown, key: string, base: Limits): Limits {
  if (v === undefined) return { ...base };
  const o = r.obj(v, key);
  const out = { ...base };
  for (const k of Object.keys(o)) {
    if (!(k in LIMIT_RANGES)) r.fail(`${key}.${k}`, `is not a known limit (${Object.keys(LIMIT_RANGES).join(', ')})`);
    const [min, max] = LIMIT_RANGES[k as keyof Limits];
    out[k as keyof Limits] = r.int(o[k], `${key}.${k}`, min, max);
  }
  return out;
}

function readExport(r: Reader, v: unknown, key: string, shared: Map<string, ExportConfig>, dir: string): ExportConfig {
  if (typeof v === 'string') {
    return shared.get(v) ?? r.fail(key, `names no shared export '${v}'`);
  }
  const o = r.strictObj(v, key, ['name', 'path', 'readOnly', 'writes']);
  const name = r.str(o.name, `${key}.name`);
  const p = path.resolve(dir, r.str(o.path, `${key}.path`));
  const readOnly = o.readOnly === undefined ? false : r.bool(o.readOnly, `${key}.readOnly`);
  if (o.writes !== undefined && o.writes !== 'passthrough' && o.writes !== 'dom0') {
    r.fail(`${key}.writes`, "must be 'passthrough' or 'dom0'");
  }
  return { name, path: p, readOnly, writes: o.writes === 'dom0' ? 'dom0' : 'passthrough' };
}

/**
 * Parses and checks a config object; `file` is used in messages and to resolve relative paths, `lines` (from
 * parseConfigText) to name the line of a bad key.
 */
export function parseConfig(raw: unknown, file: string, lines: KeyLines = {}): ServerConfig {
  const r: Reader = new Reader(file, lines);
  const dir = path.dirname(path.resolve(file));
  const o = r.obj(raw, '(top level)');
  const known = new Set(['stateDir', 'listen', 'workers', 'limits', 'exports', 'guests', 'redis', 'events', 'services']);
  for (const k of Object.keys(o)) if (!known.has(k)) r.fail(k, 'is not a known key');
  const baseLimits = readLimits(r, o.limits, 'limits', defaults.limits as Limits);
  const shared = new Map<string, ExportConfig>();
  if (o.exports !== undefined) {
    const ex = r.obj(o.exports, 'exports');
    for (const [name, v] of Object.entries(ex)) {
      const e = r.strictObj(v, `exports.${name}`, ['path', 'readOnly']);
      // Exports shared by several guests are read-only: one guest's writes must never be another's surprise.
      if (e.readOnly !== undefined && e.readOnly !== true) {
        r.fail(`exports.${name}.readOnly`, 'must be true if given: shared exports are always read-only');
      }
      shared.set(name, {
        name, path: path.resolve(dir, r.str(e.path, `exports.${name}.path`)), readOnly: true, writes: 'passthrough',
      });
    }
  }
  if (!Array.isArray(o.guests) || o.guests.length === 0) r.fail('guests', 'must be a non-empty array');
  const names = new Set<string>();
  const guests = o.guests.map((g, i): GuestConfig => {
    const key = `guests[${i}]`;
    const go = r.strictObj(g, key, ['name', 'secret', 'uid', 'exports', 'limits', 'owner', 'idMap', 'cache']);
    const name = r.str(go.name, `${key}.name`);
    if (name.length > MAX_DOMAIN_NAME || !/^[A-Za-z0-9._-]+$/.test(name)) {
      r.fail(`${key}.name`, `must be 1..${MAX_DOMAIN_NAME} of A-Z a-z 0-9 . _ -`);
    }
    if (names.has(name)) r.fail(`${key}.name`, `duplicates guest '${name}'`);
    names.add(name);
    const guest: GuestConfig = {
      name, exports: [], limits: readLimits(r, go.limits, `${key}.limits`, baseLimits), cache: 'none',
    };
    if (go.cache !== undefined) {
      const cache = r.str(go.cache, `${key}.cache`);
      if (cache !== 'none' && cache !== 'auto') r.fail(`${key}.cache`, `must be 'none' or 'auto', got '${cache}'`);
      guest.cache = cache;
    }
    if (go.secret !== undefined) guest.secret = r.str(go.secret, `${key}.secret`);
    if (go.uid !== undefined) guest.uid = r.int(go.uid, `${key}.uid`, 0, 0xfffffffe);
    if (go.owner !== undefined) {
      const ow = r.strictObj(go.owner, `${key}.owner`, ['uid', 'gid']);
      guest.owner = { uid: r.int(ow.uid, `${key}.owner.uid`, 0, MAX_ID), gid: r.int(ow.gid, `${key}.owner.gid`, 0, MAX_ID) };
      // dom0 taking on root for a guest would hand it every capability on the host's files: refused.
      if (guest.owner.uid === 0 || guest.owner.gid === 0) r.fail(`${key}.owner`, 'must not be root (0); leave it out to act as dom0');
    }
    if (go.idMap !== undefined) {
      const m = r.strictObj(go.idMap, `${key}.idMap`, ['uid', 'gid']);
      guest.idMap = { uid: readRanges(r, m.uid, `${key}.idMap.uid`), gid: readRanges(r, m.gid, `${key}.idMap.gid`) };
    }
    if (guest.secret === undefined && guest.uid === undefined) {
      r.fail(key, 'needs a secret or a uid: an unauthenticated guest could claim any name');
    }
    if (!Array.isArray(go.exports) || go.exports.length === 0) r.fail(`${key}.exports`, 'must be a non-empty array');
    const specs: unknown[] = go.exports;
    guest.exports = specs.map((e, j) => readExport(r, e, `${key}.exports[${j}]`, shared, dir));
    // Guests find an export by name: a second one of the same name could never be reached.
    guest.exports.forEach((e, j) => {
      if (guest.exports.findIndex((x) => x.name === e.name) !== j) {
        r.fail(typeof specs[j] === 'string' ? `${key}.exports[${j}]` : `${key}.exports[${j}].name`,
          `duplicates export '${e.name}'`);
      }
    });
    return guest;
  });
  const listen = { unix: false, tcp: null as { host: string; port: number } | null };
  if (o.listen !== undefined) {
    const l = r.strictObj(o.listen, 'listen', ['unix', 'tcp']);
    if (l.unix !== undefined) listen.unix = r.bool(l.unix, 'listen.unix');
    if (l.tcp !== undefined) {
      const t = r.strictObj(l.tcp, 'listen.tcp', ['host', 'port']);
      const host = t.host === undefined ? '127.0.0.1' : r.str(t.host, 'listen.tcp.host');
      listen.tcp = { host, port: t.port === undefined ? 0 : r.int(t.port, 'listen.tcp.port', 0, 65535) };
    }
  }
  const stateDir = path.resolve(dir, r.str(o.stateDir, 'stateDir'));
  return {
    file,
    stateDir,
    listen,
    workers: o.workers === undefined ? defaults.workers : r.int(o.workers, 'workers', 1, 64),
    guests,
    redis: readRedis(r, o.redis, dir, stateDir),
    events: readEvents(r, o.events),
    services: readServices(r, o.services, dir),
    lines,
  };
}

/** Reads, parses and checks a config file (YAML or JSON). */
export function loadConfig(file: string): ServerConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '(file)', `cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const doc = parseConfigText(text, file);
  return parseConfig(doc.raw, file, doc.lines);
}

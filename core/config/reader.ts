// Reading a config document: YAML text (JSON is YAML too) into plain values plus where each key is written,
// and the Reader that checks those values key by key. Every error is a ConfigError naming the file, the key
// and, where the document gives one, the line — so an administrator can go straight to it.
import { LineCounter, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Node as YamlNode } from 'yaml';
import { ConfigError } from '../errors.ts';

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The 1-based line each key is written on, by the key's name in messages (`guests[0].limits.maxHandles`).
 * Empty for a document on one line (a line number would tell nothing there) and for objects not read from text.
 */
export type KeyLines = Readonly<Record<string, number>>;

export interface ConfigDocument {
  /** The document's value: objects, arrays, strings, numbers, booleans and null. */
  raw: unknown;
  lines: KeyLines;
}

// A key's parent in message form: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ''.
const LAST_SEGMENT = /(\[\d+\]|\.[^.[\]]*)$/;

/**
 * The line of `key`, or of the nearest enclosing key written in the document when `key` itself is not (a
 * missing key is reported where its object starts); undefined when no enclosing key has a line either.
 */
export function lineOf(lines: KeyLines, key: string): number | undefined {
  for (let k = key; k !== '';) {
    const line = lines[k];
    if (line !== undefined) return line;
    const parent = k.replace(LAST_SEGMENT, '');
    if (parent === k) return undefined;
    k = parent;
  }
  return undefined;
}

const childKey = (parent: string, name: string): string => (parent === '' ? name : `${parent}.${name}`);

/**
 * Records every key's line and refuses a key given twice in one mapping. The yaml package can refuse duplicates
 * itself, but its message names neither the key nor where the first one was; ours names both.
 */
function walk(node: YamlNode | null, key: string, lc: LineCounter, file: string, out: Record<string, number>): void {
  if (isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const at = isScalar(pair.key) && pair.key.range ? lc.linePos(pair.key.range[0]).line : undefined;
      const full = childKey(key, k);
      const first = seen.get(k);
      if (first !== undefined) {
        throw new ConfigError(file, full, `is given twice (first on line ${first})`, at === undefined ? {} : { line: at });
      }
      if (at !== undefined) {
        seen.set(k, at);
        out[full] = at;
      }
      walk(pair.value as YamlNode | null, full, lc, file, out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const full = `${key}[${i}]`;
      const n = item as YamlNode | null;
      if (n?.range) out[full] = lc.linePos(n.range[0]).line;
      walk(n, full, lc, file, out);
    });
  }
  // Scalars end the walk; keys inside an alias are reported at the line of the key that holds the alias.
}

/**
 * Parses config text. YAML 1.2's core schema (so `yes` stays a string and `0777` a decimal), one document,
 * string keys only; a syntax error, an unresolved tag or a duplicate key is a ConfigError naming the line.
 * `.json` files are parsed the same way (JSON is YAML) and their syntax errors say JSON.
 */
export function parseConfigText(text: string, file: string): ConfigDocument {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, stringKeys: true, uniqueKeys: false, prettyErrors: true });
  const format = /\.json$/i.test(file) ? 'JSON' : 'YAML';
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const pos = problem.linePos?.[0];
    // The yaml package appends ` at line L, column C:` and an excerpt; the line goes in its own field instead.
    const what = problem.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').trim();
    const col = pos ? ` (column ${pos.col})` : '';
    throw new ConfigError(file, '(file)', `is not valid ${format}: ${what}${col}`, pos ? { line: pos.line } : {});
  }
  const lines: Record<string, number> = {};
  walk(doc.contents, '', lc, file, lines);
  let raw: unknown;
  try {
    // maxAliasCount bounds alias expansion: a few lines of anchors must not expand to gigabytes.
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, '(file)', `cannot be read as ${format}: ${(err as Error).message}`, { cause: err });
  }
  const oneLine = !text.trim().includes('\n');
  return { raw, lines: oneLine ? {} : lines };
}

/** Checks values of one config document; every failure is a ConfigError naming `file`, the key and its line. */
export class Reader {
  constructor(readonly file: string, readonly lines: KeyLines = {}) {}

  fail(key: string, msg: string): never {
    const line = lineOf(this.lines, key);
    throw new ConfigError(this.file, key, msg, line === undefined ? {} : { line });
  }

  obj(v: unknown, key: string): Obj {
    return isObj(v) ? v : this.fail(key, 'must be an object');
  }

  /** An object whose keys are all in `known`: a misspelt key (`readonly`) is an error, never silently ignored. */
  strictObj(v: unknown, key: string, known: readonly string[]): Obj {
    const o = this.obj(v, key);
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) this.fail(`${key}.${k}`, `is not a known key (${known.join(', ')})`);
    }
    return o;
  }

  str(v: unknown, key: string): string {
    return typeof v === 'string' && v.length > 0 ? v : this.fail(key, 'must be a non-empty string');
  }

  int(v: unknown, key: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(key, `must be an integer in ${min}..${max}`);
    }
    return v;
  }

  bool(v: unknown, key: string): boolean {
    return typeof v === 'boolean' ? v : this.fail(key, 'must be true or false');
  }

  /** `v` read by `read`, or `fallback` when the key is absent. */
  opt<T>(v: unknown, fallback: T, read: (v: unknown) => T): T {
    return v === undefined ? fallback : read(v);
  }
}

// Reading config text: YAML (and JSON as YAML) into values plus the line of every key, so that an error
// names the file, the key and the line; syntax errors, unresolved tags and duplicate keys are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../core/errors.ts';
import { Reader, lineOf, parseConfigText } from '../../../core/config/reader.ts';

const FILE = '/etc/xenfs/xenfs.yaml';

function configError(fn: () => unknown, check: { key: string; line?: number; message?: RegExp }): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, check.key);
    assert.equal(err.line, check.line);
    const where = check.line === undefined ? check.key : `${check.key} (line ${check.line})`;
    assert.ok(err.message.startsWith(`${err.file}: ${where}: `), `message '${err.message}'`);
    if (check.message) assert.match(err.message, check.message);
    return true;
  });
}

const DOC = `# a comment
stateDir: state
guests:
  - name: g1
    limits:
      maxHandles: 3
  - name: g2
exports:
  my.pub:
    path: /srv/pub
`;

test('every key gets the line it is written on; sequence items the line they start on', () => {
  const { raw, lines } = parseConfigText(DOC, FILE);
  assert.deepEqual(raw, {
    stateDir: 'state', guests: [{ name: 'g1', limits: { maxHandles: 3 } }, { name: 'g2' }],
    exports: { 'my.pub': { path: '/srv/pub' } },
  });
  assert.equal(lines.stateDir, 2);
  assert.equal(lines['guests[0]'], 4);
  assert.equal(lines['guests[0].limits.maxHandles'], 6);
  assert.equal(lines['guests[1].name'], 7);
  assert.equal(lines['exports.my.pub.path'], 10);
});

test('lineOf: a missing key is reported where its nearest written parent is', () => {
  const { lines } = parseConfigText(DOC, FILE);
  assert.equal(lineOf(lines, 'guests[0].limits.maxHandles'), 6);
  assert.equal(lineOf(lines, 'guests[1].secret'), 7);
  assert.equal(lineOf(lines, 'guests[1].exports[0].name'), 7);
  assert.equal(lineOf(lines, 'exports.my.pub.readOnly'), 9);
  assert.equal(lineOf(lines, 'redis.host'), undefined);
  assert.equal(lineOf(lines, '(top level)'), undefined);
});

test('the Reader names the line in its errors, as in the documented message', () => {
  const { raw, lines } = parseConfigText(DOC, FILE);
  const r = new Reader(FILE, lines);
  const g0 = (raw as { guests: Array<{ limits: { maxHandles: unknown } }> }).guests[0];
  assert.throws(() => r.int(g0?.limits.maxHandles, 'guests[0].limits.maxHandles', 4, 1048576), (err: unknown) =>
    err instanceof ConfigError &&
    err.message === `${FILE}: guests[0].limits.maxHandles (line 6): must be an integer in 4..1048576`);
  configError(() => r.strictObj({ readonly: true }, 'guests[1]', ['name']), { key: 'guests[1].readonly', line: 7 });
});

test('a document on one line gives no line numbers (there is only one)', () => {
  const { raw, lines } = parseConfigText('{ "stateDir": "s", "guests": [] }\n', '/x/c.json');
  assert.deepEqual(raw, { stateDir: 's', guests: [] });
  assert.deepEqual(lines, {});
  configError(() => new Reader('/x/c.json', lines).str('', 'stateDir'), { key: 'stateDir' });
});

test('a key given twice is an error naming the key, its line and the first one\'s', () => {
  configError(() => parseConfigText('stateDir: a\nworkers: 2\nstateDir: b\n', FILE),
    { key: 'stateDir', line: 3, message: /given twice \(first on line 1\)/ });
  const nested = 'guests:\n  - name: g1\n    secret: a\n    secret: b\n';
  configError(() => parseConfigText(nested, FILE), { key: 'guests[0].secret', line: 4, message: /first on line 3/ });
  // JSON's own parser keeps the last of two keys silently; read as YAML, the second one is refused.
  configError(() => parseConfigText('{\n"workers": 1,\n"workers": 2\n}', '/x/c.json'), { key: 'workers', line: 3 });
});

const syntax: Array<[string, string, string, number, RegExp]> = [
  ['an unclosed flow map', FILE, 'stateDir: s\nlimits: { maxNodes: 5\n', 3, /not valid YAML/],
  ['bad indentation', FILE, 'limits:\n  maxNodes: 5\n   maxHandles: 6\n', 2, /not valid YAML/],
  ['two documents', FILE, 'stateDir: a\n---\nstateDir: b\n', 2, /multiple documents/],
  ['an unknown tag', FILE, 'stateDir: s\nworkers: !int 3\n', 2, /Unresolved tag/],
  ['a collection as a key', FILE, 'stateDir: s\n? [a, b]\n: 1\n', 2, /not valid YAML/],
  ['broken JSON says JSON', '/x/c.json', '{\n  "stateDir": "state",\n', 3, /not valid JSON/],
];
for (const [what, file, text, line, message] of syntax) {
  test(`a syntax error names the file and the line: ${what}`, () => {
    configError(() => parseConfigText(text, file), { key: '(file)', line, message });
  });
}

test('aliases are bounded: a few lines may not expand into a huge document', () => {
  let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 8; i++) {
    text += `a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]\n`;
  }
  configError(() => parseConfigText(text, FILE), { key: '(file)', message: /alias/i });
  assert.deepEqual(parseConfigText('a: &x [1, 2]\nb: *x\n', FILE).raw, { a: [1, 2], b: [1, 2] });
});

test('YAML 1.2 core schema: yes stays a string, 0777 is decimal, an empty file is null', () => {
  assert.deepEqual(parseConfigText('a: yes\nb: 0777\nc: 0x10\nd: ~\n', FILE).raw, { a: 'yes', b: 777, c: 16, d: null });
  assert.equal(parseConfigText('', FILE).raw, null);
  configError(() => new Reader(FILE).obj(parseConfigText('# nothing\n', FILE).raw, '(top level)'), { key: '(top level)' });
});

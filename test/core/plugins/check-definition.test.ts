// A loaded service module is checked before the runtime trusts it: every mistake names the module file and
// the field (a ConfigError), at load rather than as a TypeError in the middle of the event flow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../core/errors.ts';
import { checkDefinition } from '../../../core/plugins/check-definition.ts';

const MODULE = '/opt/xenfs/plugins/thumbs/index.ts';
const handle = async (): Promise<void> => {};
const valid = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'thumbs',
  version: '1.0.0',
  subscriptions: { kinds: ['created', 'modified'], guests: ['web-1'], exports: ['www'] },
  configSchema: { type: 'object', properties: { size: { type: 'integer', default: 128 } } },
  handle,
  ...over,
});

test('a valid definition is returned as it is', () => {
  const def = valid({ start: () => {}, stop: async () => {}, health: () => ({ healthy: true }) });
  assert.equal(checkDefinition(def, MODULE), def);
  const batch = valid({ handle: undefined, handleBatch: async () => [] });
  delete batch.handle;
  assert.equal(checkDefinition(batch, MODULE), batch);
  assert.ok(checkDefinition(valid({ subscriptions: {} }), MODULE));
});

const bad: Array<[string, unknown, string, RegExp]> = [
  ['not an object', () => {}, '(default export)', /must be an object/],
  ['no default export at all', undefined, '(default export)', /must be an object/],
  ['a misspelt key', valid({ handel: handle }), 'handel', /not a known key/],
  ['no name', valid({ name: undefined }), 'name', /a-z/],
  ['a name with capitals', valid({ name: 'Thumbs' }), 'name', /a-z/],
  ['a name with a dot', valid({ name: 'a.b' }), 'name', /a-z/],
  ['an empty version', valid({ version: '' }), 'version', /non-empty string/],
  ['no subscriptions', valid({ subscriptions: undefined }), 'subscriptions', /must be an object/],
  ['an unknown subscription key', valid({ subscriptions: { kind: ['created'] } }), 'subscriptions.kind', /not a known key/],
  ['an unknown kind', valid({ subscriptions: { kinds: ['created', 'written'] } }), 'subscriptions.kinds[1]', /one of created, modified/],
  ['kinds not an array', valid({ subscriptions: { kinds: 'created' } }), 'subscriptions.kinds', /non-empty array/],
  ['an empty kinds list', valid({ subscriptions: { kinds: [] } }), 'subscriptions.kinds', /leave it out for all/],
  ['a guest that is not a string', valid({ subscriptions: { guests: [1] } }), 'subscriptions.guests[0]', /string/],
  ['an empty export name', valid({ subscriptions: { exports: [''] } }), 'subscriptions.exports[0]', /string/],
  ['no configSchema', valid({ configSchema: undefined }), 'configSchema', /must be an object/],
  ['a bad configSchema', valid({ configSchema: { type: 'object', properties: { a: { type: 'int' } } } }),
    'configSchema.properties.a.type', /one of/],
  ['no handler', valid({ handle: undefined }), 'handle', /exactly one of handle and handleBatch/],
  ['both handlers', valid({ handleBatch: async () => [] }), 'handleBatch', /exactly one/],
  ['handle not a function', valid({ handle: 'run' }), 'handle', /must be a function/],
  ['start not a function', valid({ start: {} }), 'start', /must be a function/],
  ['health not a function', valid({ health: true }), 'health', /must be a function/],
];
for (const [what, def, key, message] of bad) {
  test(`checkDefinition: ${what} names ${key} and the module`, () => {
    assert.throws(() => checkDefinition(def, MODULE), (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.file, MODULE);
      assert.equal(err.key, key);
      assert.ok(err.message.startsWith(`${MODULE}: ${key}: `), err.message);
      assert.match(err.message, message);
      return true;
    }, key);
  });
}

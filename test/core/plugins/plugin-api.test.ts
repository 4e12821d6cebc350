// defineService types a definition without changing it; the type allows exactly one of handle and
// handleBatch (checked by tsc over this file) and carries the config type into every hook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineService } from '../../../core/plugins/plugin-api.ts';
import type { EventOutcome, ServiceDefinition } from '../../../core/plugins/plugin-api.ts';
import { checkDefinition } from '../../../core/plugins/check-definition.ts';

interface Settings { threshold: number }

test('defineService returns the definition itself, typed, and it passes checkDefinition', () => {
  const seen: number[] = [];
  const def = defineService<Settings>({
    name: 'typed',
    subscriptions: { kinds: ['modified'] },
    configSchema: { type: 'object', properties: { threshold: { type: 'integer', default: 3 } } },
    handle(event, ctx): EventOutcome {
      // ctx.config is Settings: a typo here would not compile.
      seen.push(ctx.config.threshold + event.size);
      return { status: 'done' };
    },
  });
  assert.equal(checkDefinition(def, 'typed.ts'), def);
  assert.equal(typeof def.handle, 'function');
  assert.deepEqual(seen, []);
});

test('the type refuses a definition with both handlers or with neither', () => {
  const base = { name: 'x', subscriptions: {}, configSchema: { type: 'object' as const } };
  // @ts-expect-error: both handle and handleBatch
  const both: ServiceDefinition = { ...base, handle: () => {}, handleBatch: () => [] };
  // @ts-expect-error: neither handler
  const neither: ServiceDefinition = { ...base };
  assert.throws(() => checkDefinition(both, 'both.ts'), /exactly one/);
  assert.throws(() => checkDefinition(neither, 'neither.ts'), /exactly one/);
});

// The layering rule (eslint/layering-rule.js, table in eslint.config.js) run through ESLint's own API on small
// snippets placed at paths inside the repository. The files need not exist: the rule resolves specifiers by
// path arithmetic alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: root });

/** Messages of the layering rule for `code` placed at `file` (relative to the repository root). */
async function layering(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${file}` });
  assert.ok(result, `no lint result for ${file}`);
  const fatal = result.messages.filter((m) => m.fatal === true);
  assert.deepEqual(fatal, [], `snippet for ${file} does not parse`);
  return result.messages.filter((m) => m.ruleId === 'xenfs/layering').map((m) => m.message);
}

async function assertFlagged(file: string, code: string, pattern: RegExp): Promise<void> {
  const messages = await layering(file, code);
  assert.equal(messages.length, 1, `expected one layering error in ${file}, got ${JSON.stringify(messages)}`);
  assert.match(messages[0] ?? '', pattern);
}

async function assertAllowed(file: string, code: string): Promise<void> {
  assert.deepEqual(await layering(file, code), [], `expected no layering error in ${file}`);
}

test('the rule is on for TypeScript files in core', async () => {
  const config = (await eslint.calculateConfigForFile(`${root}core/protocol/x.ts`)) as { rules?: Record<string, unknown> };
  assert.ok(config.rules?.['xenfs/layering'], 'xenfs/layering is not configured for core/protocol/x.ts');
});

test('core/protocol importing core/server is flagged', async () => {
  await assertFlagged(
    'core/protocol/decode.ts',
    "import { Server } from '../server/server.ts';\nexport const s = Server;\n",
    /core\/protocol may not import core\/server/,
  );
});

test('depth and extension do not matter: core/protocol/sub importing ../../server/x.js is flagged', async () => {
  await assertFlagged(
    'core/protocol/sub/decode.ts',
    "export { Server } from '../../server/server.js';\n",
    /core\/protocol may not import core\/server/,
  );
});

test('type-only imports count as imports', async () => {
  await assertFlagged(
    'core/xen/grant-table.ts',
    "import type { Ring } from '../ring/ring.ts';\nexport type R = Ring;\n",
    /core\/xen may not import core\/ring/,
  );
});

test('services/indexer importing services/scanner is flagged', async () => {
  await assertFlagged(
    'services/indexer/index.ts',
    "import { scan } from '../scanner/index.ts';\nexport const s = scan;\n",
    /never imports another service.*services\/indexer imports services\/scanner/,
  );
});

test('services importing core/index.ts is fine', async () => {
  await assertAllowed(
    'services/indexer/index.ts',
    "import { definePlugin } from '../../core/index.ts';\nimport { helper } from './helper.ts';\n" +
      'export default definePlugin(helper);\n',
  );
});

test('services importing a core internal is flagged', async () => {
  await assertFlagged(
    'services/backup/snapshot.ts',
    "import { ERROR_CODES } from '../../core/errors.ts';\nexport const c = ERROR_CODES;\n",
    /services may not import core\/errors\+util/,
  );
});

test('core/frontend importing core/protocol is fine', async () => {
  await assertAllowed(
    'core/frontend/client.ts',
    "import { encodeRequest } from '../protocol/layout.ts';\nimport { ProtocolError } from '../errors.ts';\n" +
      'export const e = [encodeRequest, ProtocolError];\n',
  );
});

test('core/server, core/backend and core/frontend may not reach the upper tier', async () => {
  await assertFlagged(
    'core/server/connection.ts',
    "import { publish } from '../events/publish.ts';\nexport const p = publish;\n",
    /core\/server may not import core\/events/,
  );
  await assertFlagged(
    'core/frontend/mount.ts',
    "import { cli } from '../cli/main.ts';\nexport const c = cli;\n",
    /core\/frontend may not import core\/cli/,
  );
  await assertFlagged(
    'core/backend/export-dir.ts',
    "import { x } from '../../services/indexer/index.ts';\nexport const y = x;\n",
    /core\/backend may not import services/,
  );
});

test('the backend does not know the transport', async () => {
  await assertFlagged(
    'core/backend/export-dir.ts',
    "import { Ring } from '../ring/ring.ts';\nexport const r = Ring;\n",
    /core\/backend may not import core\/ring/,
  );
});

test('core/errors.ts and core/util are importable from any core layer', async () => {
  for (const file of ['core/xen/grant-table.ts', 'core/ring/ring.ts', 'core/protocol/decode.ts', 'core/web/app.ts']) {
    await assertAllowed(
      file,
      "import { XenfsError } from '../errors.ts';\nimport { align } from '../util/align.ts';\n" +
        'export const e = [XenfsError, align];\n',
    );
  }
});

test('only core/xen loads the native addon', async () => {
  const load =
    "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n" +
    "export const addon: unknown = require('../../build/Release/xenfs_native.node');\n";
  await assertAllowed('core/xen/addon.ts', load);
  await assertFlagged('core/ring/ring.ts', load, /Only core\/xen loads the native addon/);
  await assertFlagged('test/core/ring/ring.test.ts', load.replace('../../', '../../../'), /Only core\/xen/);
  await assertFlagged(
    'core/server/server.ts',
    "import bindings from 'bindings';\nexport const b: unknown = bindings('xenfs_native');\n",
    /Only core\/xen/,
  );
});

test('core/protocol stays pure: no fs or net, node:buffer is fine', async () => {
  await assertFlagged(
    'core/protocol/decode.ts',
    "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n",
    /pure encode\/decode and may not import 'node:fs'/,
  );
  await assertFlagged(
    'core/protocol/decode.ts',
    "import { createConnection } from 'net';\nexport const c = createConnection;\n",
    /may not import 'net'/,
  );
  await assertAllowed('core/protocol/decode.ts', "import { Buffer } from 'node:buffer';\nexport const b = Buffer;\n");
});

test('nothing inside core imports core/index.ts', async () => {
  await assertFlagged(
    'core/plugins/runtime.ts',
    "import { x } from '../index.ts';\nexport const y = x;\n",
    /core\/plugins may not import core\/index/,
  );
});

test('a core directory missing from the layer table is reported', async () => {
  await assertFlagged('core/gadgets/thing.ts', 'export const x = 1;\n', /core\/gadgets\/thing\.ts belongs to no layer/);
});

test('tests may import core internals', async () => {
  await assertAllowed(
    'test/core/server/server.test.ts',
    "import { Server } from '../../../core/server/server.ts';\nimport { x } from '../../../services/indexer/index.ts';\n" +
      'export const s = [Server, x];\n',
  );
});

test('core/errors.ts and core/util sit at the bottom: they import no other core layer', async () => {
  await assertFlagged(
    'core/errors.ts',
    "import { Opcode } from './protocol/opcodes.ts';\nexport const o = Opcode;\n",
    /core\/errors\+util may not import core\/protocol/,
  );
});

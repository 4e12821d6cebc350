// @ts-check
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import xenfs from './eslint/layering-rule.js';

const root = path.dirname(fileURLToPath(import.meta.url));

// Bare modules that do I/O or start processes: the protocol layer is pure encode/decode.
const ioModules = [
  'fs', 'fs/promises', 'net', 'dgram', 'child_process', 'cluster', 'worker_threads', 'dns', 'http', 'http2',
  'https', 'tls', 'readline', 'inspector',
];

const shared = 'core/errors+util';
const below = (/** @type {string[]} */ ...names) => [shared, ...names];

/**
 * The layers, lowest first (STYLE.md point 1, DESIGN.md "A layout to start from"). A layer may import itself
 * and the layers in its `allow`; nothing else in the repository. Bare npm packages are free except where
 * `forbidModules` says otherwise. Files outside these layers (test/, bench/, scripts/) are free, except that
 * only core/xen may load the native addon.
 */
const layers = [
  { name: 'native', paths: ['native', 'build'], allow: [] },
  // Importable from anywhere in core; they import nothing else of core's.
  { name: shared, paths: ['core/errors', 'core/util'], allow: [] },
  { name: 'core/xen', paths: ['core/xen'], allow: below('native') },
  { name: 'core/ring', paths: ['core/ring'], allow: below('core/xen') },
  { name: 'core/protocol', paths: ['core/protocol'], allow: below(), forbidModules: ioModules },
  // Option schemas and defaults; the middle tier reads its limits from here, so it sits below it.
  { name: 'core/config', paths: ['core/config'], allow: below('core/protocol', 'config') },
  { name: 'config', paths: ['config'], allow: [] },
  // The backend never knows the transport (STYLE.md point 2): no ring, server or front end.
  { name: 'core/backend', paths: ['core/backend'], allow: below('core/xen', 'core/protocol', 'core/config') },
  {
    name: 'core/server',
    paths: ['core/server'],
    allow: below('core/xen', 'core/ring', 'core/protocol', 'core/config', 'core/backend'),
  },
  {
    name: 'core/frontend',
    paths: ['core/frontend'],
    allow: below('core/xen', 'core/ring', 'core/protocol', 'core/config'),
  },
];
const middle = ['core/xen', 'core/ring', 'core/protocol', 'core/config', 'core/backend', 'core/server', 'core/frontend'];
layers.push(
  { name: 'core/events', paths: ['core/events'], allow: below(...middle) },
  { name: 'core/plugins', paths: ['core/plugins'], allow: below(...middle, 'core/events') },
  { name: 'core/web', paths: ['core/web'], allow: below(...middle, 'core/events', 'core/plugins') },
  { name: 'core/cli', paths: ['core/cli'], allow: below(...middle, 'core/events', 'core/plugins', 'core/web') },
);
// core's public entry re-exports from every core layer; nothing inside core imports it back.
layers.push({ name: 'core/index', paths: ['core/index'], allow: layers.filter((l) => l.name.startsWith('core/')).map((l) => l.name) });
// One layer per service, so one service importing another is a crossing too.
layers.push({ name: 'services', paths: ['services/*'], allow: ['core/index'] });

export default defineConfig(
  { ignores: ['scratch/**', 'node_modules/', 'build/', '.state/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    plugins: { xenfs },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'separate-type-imports' }],
      'xenfs/layering': [
        'error',
        { root, layers, checked: ['core', 'services'], native: { layer: 'core/xen', modules: ['bindings', 'node-gyp-build'] } },
      ],
    },
  },
);

// @ts-check
/**
 * `xenfs/layering`: imports flow one way (STYLE.md point 1).
 *
 * Every module specifier (static and dynamic `import`, `export … from`, `require`, `import x = require`,
 * `typeof import(…)`) is resolved by path arithmetic against the repository root, without touching the disk,
 * so a file that does not exist yet, or a `.js` specifier standing for a `.ts` file, is judged the same way.
 * Type-only imports count: a type couples layers as surely as a value does.
 *
 * Options (one object; the table itself lives in eslint.config.js):
 * - `root`: absolute path of the repository.
 * - `layers`: `[{ name, paths, allow, forbidModules? }]`, first match wins. A path `p` covers `p` itself,
 *   `p/…` and `p.<ext>`; a `*` segment makes one layer per directory it matches (`services/*`: each service
 *   is its own layer, so a service importing another is a crossing). A layer may always import itself.
 *   `allow` names the other layers it may import. `forbidModules` lists bare modules it may not import
 *   (`node:` prefix optional).
 * - `checked`: path prefixes whose files must belong to a layer (`['core']`): a file there that matches no
 *   layer is reported, so a new directory has to be placed in the table before it can be used.
 * - `native`: `{ layer, modules }`: the layer that alone may load the addon, and the bare packages that load
 *   addons. A `.node` file, or any path inside the native layer, is the addon. This check applies to every
 *   file in the repository, tests and benchmarks included.
 */

import path from 'node:path';

/** @typedef {{ name: string, paths: string[], allow: string[], forbidModules?: string[] }} LayerSpec */
/** @typedef {{ name: string, id: string }} LayerHit */

/**
 * Which layer covers a repository-relative path, and which instance of it (`services/indexer`).
 * @param {LayerSpec[]} layers
 * @param {string} rel posix, relative to the root, no leading `./`
 * @returns {LayerHit | undefined}
 */
function layerOf(layers, rel) {
  const segs = rel.split('/');
  for (const layer of layers) {
    for (const p of layer.paths) {
      const id = matchPath(p.split('/'), segs);
      if (id !== undefined) return { name: layer.name, id };
    }
  }
  return undefined;
}

/**
 * @param {string[]} pattern
 * @param {string[]} segs
 * @returns {string | undefined} the concrete prefix matched, or undefined
 */
function matchPath(pattern, segs) {
  if (segs.length < pattern.length) return undefined;
  const concrete = [];
  for (let i = 0; i < pattern.length; i++) {
    const want = /** @type {string} */ (pattern[i]);
    const seg = /** @type {string} */ (segs[i]);
    const last = i === pattern.length - 1;
    if (want === '*') {
      concrete.push(seg);
      continue;
    }
    // The last segment also covers `want.ts`, `want.js`, …: `core/errors` is `core/errors.ts`.
    if (seg === want || (last && segs.length === pattern.length && seg.startsWith(`${want}.`))) {
      concrete.push(want);
      continue;
    }
    return undefined;
  }
  return concrete.join('/');
}

/** @param {string} spec */
function bareModuleName(spec) {
  return spec.startsWith('node:') ? spec.slice('node:'.length) : spec;
}

/** @type {import('eslint').Rule.RuleModule} */
export const layeringRule = {
  meta: {
    type: 'problem',
    docs: { description: 'Keep imports flowing one way between the layers of XenFS (STYLE.md point 1).' },
    schema: [
      {
        type: 'object',
        additionalProperties: false,
        required: ['root', 'layers'],
        properties: {
          root: { type: 'string' },
          checked: { type: 'array', items: { type: 'string' } },
          native: {
            type: 'object',
            additionalProperties: false,
            required: ['layer'],
            properties: { layer: { type: 'string' }, modules: { type: 'array', items: { type: 'string' } } },
          },
          layers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'paths', 'allow'],
              properties: {
                name: { type: 'string' },
                paths: { type: 'array', items: { type: 'string' }, minItems: 1 },
                allow: { type: 'array', items: { type: 'string' } },
                forbidModules: { type: 'array', items: { type: 'string' } },
              },
            },
          },
        },
      },
    ],
    messages: {
      upward:
        "{{from}} may not import {{to}} ('{{spec}}'): imports flow one way (STYLE.md 1). {{from}} may import: {{allowed}}.",
      otherService: "A service never imports another service: {{from}} imports {{to}} ('{{spec}}').",
      native: "Only {{nativeLayer}} loads the native addon ('{{spec}}'); use core/xen's typed classes instead.",
      module: "{{from}} is pure encode/decode and may not import '{{spec}}'.",
      unplacedTarget:
        "'{{spec}}' resolves to {{to}}, which belongs to no layer; {{from}} may import: {{allowed}}.",
      unplacedFile:
        '{{file}} belongs to no layer: add its directory to the layer table in eslint.config.js (STYLE.md 1).',
    },
  },

  create(context) {
    const options = /** @type {{ root: string, layers: LayerSpec[], checked?: string[],
      native?: { layer: string, modules?: string[] } }} */ (context.options[0]);
    const { root, layers } = options;
    const byName = new Map(layers.map((l) => [l.name, l]));
    const nativeLayer = options.native?.layer;
    const nativeModules = new Set(options.native?.modules ?? []);

    const fileRel = path.relative(root, context.filename).split(path.sep).join('/');
    if (fileRel.startsWith('..') || path.isAbsolute(fileRel)) return {};
    const fileDir = path.dirname(context.filename);
    const from = layerOf(layers, fileRel);
    const mustBePlaced = (options.checked ?? []).some((p) => fileRel === p || fileRel.startsWith(`${p}/`));

    /** @param {string} name */
    const allowedText = (name) => {
      const allow = byName.get(name)?.allow ?? [];
      return allow.length > 0 ? allow.join(', ') : 'nothing outside itself';
    };

    /**
     * @param {import('estree').Node} node
     * @param {string} spec
     */
    function check(node, spec) {
      const relative = spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..';
      if (!relative && !path.isAbsolute(spec)) {
        checkBare(node, spec);
        return;
      }
      const abs = path.resolve(fileDir, spec);
      const rel = path.relative(root, abs).split(path.sep).join('/');
      const outside = rel.startsWith('..') || path.isAbsolute(rel);
      const to = outside ? undefined : layerOf(layers, rel);

      const isNative = spec.endsWith('.node') || (to !== undefined && to.name === (options.native?.target ?? 'native'));
      if (isNative && nativeLayer !== undefined && from?.name !== nativeLayer) {
        context.report({ node, messageId: 'native', data: { spec, nativeLayer } });
        return;
      }
      if (from === undefined || outside || isNative) return;
      if (to === undefined) {
        context.report({
          node,
          messageId: 'unplacedTarget',
          data: { spec, to: rel, from: from.name, allowed: allowedText(from.name) },
        });
        return;
      }
      if (to.name === from.name) {
        if (to.id === from.id) return;
        context.report({ node, messageId: 'otherService', data: { spec, from: from.id, to: to.id } });
        return;
      }
      if (byName.get(from.name)?.allow.includes(to.name)) return;
      context.report({
        node,
        messageId: 'upward',
        data: { spec, from: from.name, to: to.name, allowed: allowedText(from.name) },
      });
    }

    /**
     * @param {import('estree').Node} node
     * @param {string} spec
     */
    function checkBare(node, spec) {
      if (nativeLayer !== undefined && from?.name !== nativeLayer && (nativeModules.has(spec) || spec.endsWith('.node'))) {
        context.report({ node, messageId: 'native', data: { spec, nativeLayer } });
        return;
      }
      if (from === undefined) return;
      const forbidden = byName.get(from.name)?.forbidModules ?? [];
      const name = bareModuleName(spec);
      if (forbidden.some((m) => name === bareModuleName(m) || name.startsWith(`${bareModuleName(m)}/`))) {
        context.report({ node, messageId: 'module', data: { spec, from: from.name } });
      }
    }

    /**
     * The string a specifier node holds, when it is a plain literal.
     * @param {unknown} node
     * @returns {string | undefined}
     */
    function literal(node) {
      const n = /** @type {{ type?: string, value?: unknown, expressions?: unknown[], quasis?: { value: { cooked?: string } }[], literal?: unknown } | null} */ (node);
      if (n === null || typeof n !== 'object') return undefined;
      if (n.type === 'Literal' && typeof n.value === 'string') return n.value;
      if (n.type === 'TemplateLiteral' && n.expressions?.length === 0) return n.quasis?.[0]?.value.cooked;
      if (n.type === 'TSLiteralType') return literal(n.literal);
      return undefined;
    }

    /** @param {{ source?: unknown } & import('estree').Node} node */
    const fromSource = (node) => {
      const spec = literal(node.source);
      if (spec !== undefined) check(node, spec);
    };

    return {
      Program(node) {
        if (mustBePlaced && from === undefined) {
          context.report({ node, loc: { line: 1, column: 0 }, messageId: 'unplacedFile', data: { file: fileRel } });
        }
      },
      ImportDeclaration: fromSource,
      ExportNamedDeclaration: fromSource,
      ExportAllDeclaration: fromSource,
      ImportExpression: fromSource,
      CallExpression(node) {
        const callee = node.callee;
        // `require(…)`, and the function createRequire() hands back, whatever it is named.
        const isRequire =
          (callee.type === 'Identifier' && /require$/i.test(callee.name)) ||
          (callee.type === 'CallExpression' && callee.callee.type === 'Identifier' && callee.callee.name === 'createRequire');
        // process.dlopen(module, filename) is the other way in to an addon.
        const isDlopen =
          callee.type === 'MemberExpression' && callee.property.type === 'Identifier' && callee.property.name === 'dlopen';
        const spec = literal(node.arguments[isDlopen ? 1 : 0]);
        if (spec !== undefined && (isRequire || isDlopen)) check(node, spec);
      },
      /** @param {import('estree').Node & { moduleReference?: { type: string, expression?: unknown } }} node */
      TSImportEqualsDeclaration(node) {
        const ref = node.moduleReference;
        if (ref?.type !== 'TSExternalModuleReference') return;
        const spec = literal(ref.expression);
        if (spec !== undefined) check(node, spec);
      },
      /** @param {import('estree').Node & { argument?: unknown }} node */
      TSImportType(node) {
        const spec = literal(node.argument);
        if (spec !== undefined) check(node, spec);
      },
    };
  },
};

export default { rules: { layering: layeringRule } };

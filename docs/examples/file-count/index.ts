// file-count: an example XenFS service (docs/plugins.md walks through it). It keeps, in its own SQLite
// database, the set of files in every guest's exports, and so how many files each guest has. Enable it with
//
//   services:
//     file-count:
//       module: /path/to/docs/examples/file-count/index.ts
//       config: { countDirectories: true }
//
// Events arrive at least once, so every change is applied idempotently: the table holds paths, not counters,
// and handling the same event twice leaves it as handling it once did.
import { defineService } from '../../../core/index.ts';
import type { ChangeEvent, EventOutcome, ServiceContext } from '../../../core/index.ts';

/** The settings `services.file-count.config` holds, as configSchema below describes them. */
export interface FileCountSettings {
  /** Count directories as entries too. */
  countDirectories: boolean;
}

type Ctx = ServiceContext<FileCountSettings>;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS entries (
    guest TEXT NOT NULL, export TEXT NOT NULL, path TEXT NOT NULL, dir INTEGER NOT NULL,
    PRIMARY KEY (guest, export, path)
  ) WITHOUT ROWID`;

/** Entries per guest, from a file-count database (the dashboard or a CLI can open state.db read-only). */
export function fileCounts(ctx: Ctx): Record<string, number> {
  const rows = ctx.db().prepare('SELECT guest, COUNT(*) AS n FROM entries GROUP BY guest ORDER BY guest')
    .all() as Array<{ guest: string; n: number }>;
  return Object.fromEntries(rows.map((r) => [r.guest, r.n]));
}

// SQLite's substr() counts characters (code points); JavaScript's length counts UTF-16 units.
const chars = (s: string): number => [...s].length;

function add(ctx: Ctx, e: ChangeEvent, dir: boolean): void {
  ctx.db().prepare('INSERT OR IGNORE INTO entries (guest, export, path, dir) VALUES (?, ?, ?, ?)')
    .run(e.guest, e.export, e.path, dir ? 1 : 0);
}

/** Removes `path` and, for a directory, everything under it. */
function remove(ctx: Ctx, e: ChangeEvent): void {
  ctx.db().prepare(`DELETE FROM entries WHERE guest = ? AND export = ? AND (path = ? OR substr(path, 1, ?) = ?)`)
    .run(e.guest, e.export, e.path, chars(e.path) + 1, `${e.path}/`);
}

/** Moves `oldPath` to `path`; a directory's entries move with it (the event names only the directory). */
function rename(ctx: Ctx, e: ChangeEvent & { oldPath: string }): void {
  // OR REPLACE: renaming onto an existing name replaces that entry, as rename(2) replaces the file.
  ctx.db().prepare(`UPDATE OR REPLACE entries SET path = ? || substr(path, ?)
    WHERE guest = ? AND export = ? AND (path = ? OR substr(path, 1, ?) = ?)`)
    .run(e.path, chars(e.oldPath) + 1, e.guest, e.export, e.oldPath, chars(e.oldPath) + 1, `${e.oldPath}/`);
}

export default defineService<FileCountSettings>({
  name: 'file-count',
  version: '1.0.0',
  subscriptions: { kinds: ['created', 'deleted', 'renamed', 'dirCreated', 'dirDeleted'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      countDirectories: { type: 'boolean', default: false, description: 'Count directories as entries too.' },
    },
  },

  start(ctx) {
    ctx.db().exec(SCHEMA);
    ctx.logger.info({ countDirectories: ctx.config.countDirectories }, 'file-count started');
  },

  handle(event, ctx): EventOutcome {
    switch (event.kind) {
      case 'created':
        add(ctx, event, false);
        return { status: 'done' };
      case 'dirCreated':
        if (!ctx.config.countDirectories) return { status: 'skipped', reason: 'directories are not counted' };
        add(ctx, event, true);
        return { status: 'done' };
      case 'deleted':
      case 'dirDeleted':
        remove(ctx, event);
        return { status: 'done' };
      case 'renamed':
        if (event.oldPath === undefined) return { status: 'failed', reason: 'a renamed event without oldPath' };
        rename(ctx, { ...event, oldPath: event.oldPath });
        return { status: 'done' };
      default:
        // Not subscribed to; the runtime filters them out, but a service should not trust that blindly.
        return { status: 'skipped', reason: `${event.kind} events do not change the count` };
    }
  },

  health(ctx) {
    const total = Object.values(fileCounts(ctx)).reduce((a, b) => a + b, 0);
    return { healthy: true, detail: `${total} entries` };
  },
});

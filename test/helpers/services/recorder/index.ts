// recorder: a test service that writes down every event it is handed, once per delivery, in its own SQLite
// database (`handled`), and keeps the set of files it believes each export holds (`files`, maintained
// idempotently, as a real index would). Fault tests compare both with the event log and the export on disk.
// Settings: `delayMs` (each event takes this long: a job in flight when a worker is killed), `failPaths` (paths
// whose events fail, for retry and failure tests).
import { defineService } from '../../../../core/index.ts';
import type { ChangeEvent, EventOutcome, ServiceContext } from '../../../../core/index.ts';

interface Settings {
  delayMs: number;
  failPaths: string[];
}

type Ctx = ServiceContext<Settings>;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS handled (
    seq INTEGER NOT NULL, origin TEXT NOT NULL, kind TEXT NOT NULL, guest TEXT NOT NULL, export TEXT NOT NULL,
    path TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL, sense INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS files (
    guest TEXT NOT NULL, export TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (guest, export, path)) WITHOUT ROWID`;

// An event "makes sense" when its fields are what the kind needs: a handler must never be handed garbage.
function makesSense(e: ChangeEvent): boolean {
  const pathOk = typeof e.path === 'string' && !e.path.startsWith('/') && !e.path.split('/').includes('..');
  const renameOk = e.kind !== 'renamed' || (typeof e.oldPath === 'string' && e.oldPath !== e.path);
  return pathOk && renameOk && Number.isSafeInteger(e.seq) && e.seq > 0 && e.guest.length > 0;
}

function apply(ctx: Ctx, e: ChangeEvent): void {
  const db = ctx.db();
  const under = `substr(path, 1, ${[...e.path].length + 1}) = ?`;
  switch (e.kind) {
    case 'created':
    case 'modified':
    case 'metadata':
      if (!e.dir) db.prepare('INSERT OR IGNORE INTO files VALUES (?, ?, ?)').run(e.guest, e.export, e.path);
      break;
    case 'deleted':
      db.prepare('DELETE FROM files WHERE guest = ? AND export = ? AND path = ?').run(e.guest, e.export, e.path);
      break;
    case 'dirDeleted':
      db.prepare(`DELETE FROM files WHERE guest = ? AND export = ? AND ${under}`).run(e.guest, e.export, `${e.path}/`);
      break;
    case 'renamed': {
      const old = e.oldPath ?? '';
      const n = [...old].length;
      db.prepare(`UPDATE OR REPLACE files SET path = ? || substr(path, ?) WHERE guest = ? AND export = ?
        AND (path = ? OR substr(path, 1, ?) = ?)`).run(e.path, n + 1, e.guest, e.export, old, n + 1, `${old}/`);
      break;
    }
    case 'dirCreated':
      break;
  }
}

export default defineService<Settings>({
  name: 'recorder',
  subscriptions: {},
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      delayMs: { type: 'integer', minimum: 0, default: 0 },
      failPaths: { type: 'array', items: { type: 'string' }, default: [] },
    },
  },
  start(ctx) {
    ctx.db().exec(SCHEMA);
  },
  async handle(event, ctx): Promise<EventOutcome> {
    const sense = makesSense(event);
    ctx.db().prepare('INSERT INTO handled VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      event.seq, event.origin, event.kind, event.guest, event.export, event.path, process.pid, Date.now(), sense ? 1 : 0);
    if (ctx.config.delayMs > 0) await new Promise((r) => setTimeout(r, ctx.config.delayMs));
    if (ctx.config.failPaths.includes(event.path)) return { status: 'retry', reason: `${event.path} is set to fail` };
    apply(ctx, event);
    return { status: 'done' };
  },
});

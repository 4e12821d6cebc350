// dom0's administration endpoint: HTTP on a UNIX socket in the state directory (mode 0600: root's only), which
// `xenfs status` and, later, the dashboard read. Only what is routed here answers; anything else is a 4xx.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

export type AdminRoute = () => Promise<unknown>;

export function adminSocketPath(stateDir: string): string {
  return path.join(stateDir, 'admin.sock');
}

export class AdminSocket {
  readonly path: string;
  readonly #server: http.Server;

  /** Listens on `<stateDir>/admin.sock`; each route answers GET with its value as JSON. */
  static async listen(stateDir: string, routes: Record<string, AdminRoute>): Promise<AdminSocket> {
    const s = new AdminSocket(adminSocketPath(stateDir), routes);
    // A socket left by a dom0 that died: only one dom0 owns a state directory, so nothing listens on it.
    fs.rmSync(s.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(s.path, () => resolve());
    });
    fs.chmodSync(s.path, 0o600);
    return s;
  }

  private constructor(file: string, routes: Record<string, AdminRoute>) {
    this.path = file;
    this.#server = http.createServer((req, res) => {
      const send = (code: number, body: unknown): void => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify(body)}\n`);
      };
      const route = Object.hasOwn(routes, req.url ?? '') ? routes[req.url ?? ''] : undefined;
      if (!route) return send(404, { error: `no such resource: ${req.url ?? ''}` });
      if (req.method !== 'GET') return send(405, { error: `${req.method ?? ''} is not allowed; use GET` });
      route().then((v) => send(200, v), (err: Error) => send(500, { error: err.message }));
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }
}

/** GETs `resource` from the admin socket of `stateDir`, parsed. Throws with the socket's path when dom0 is not up. */
export function adminGet(stateDir: string, resource: string, timeoutMs = 10_000): Promise<unknown> {
  const socketPath = adminSocketPath(stateDir);
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: resource, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          const v: unknown = JSON.parse(body);
          if (res.statusCode !== 200) reject(new Error(`${resource}: ${(v as { error?: string }).error ?? res.statusCode}`));
          else resolve(v);
        } catch {
          reject(new Error(`${socketPath}: not a JSON answer`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${socketPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        ? new Error(`dom0 is not running (nothing listens on ${socketPath})`)
        : err);
    });
  });
}

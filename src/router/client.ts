// What the daemon uses: a client for the router's control socket, and the start-if-absent
// that launches the router as a detached process so it outlives the daemon.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RouterUnavailable } from '../errors/index.ts';
import { ControlConnection } from './control.ts';
import { routerPaths } from './paths.ts';
import type { PingReply, RouterOptions, RouterStats } from './router.ts';
import type { RouterCerts } from './certs.ts';
import type { Backend, RouteTable } from './table.ts';

export interface SwitchOptions {
  /** Give up waiting for the old backends after this long (default: the router's, 30 s). */
  drainTimeoutMs?: number;
}

export class RouterClient {
  private readonly conn: ControlConnection;

  private constructor(conn: ControlConnection) {
    this.conn = conn;
  }

  static async connect(dataDir: string, timeoutMs = 2000): Promise<RouterClient> {
    return new RouterClient(await ControlConnection.open(routerPaths(dataDir).socket, timeoutMs));
  }

  /** Replace the whole table (e.g. on daemon start). Resolves once removed backends drained. */
  setRoutes(table: RouteTable, opts: SwitchOptions = {}): Promise<{ drained: boolean }> {
    return this.conn.call('setRoutes', { table, ...opts }) as Promise<{ drained: boolean }>;
  }

  /**
   * Point `app` at `backends` in every worker at once. Resolves when the backends it no
   * longer uses have finished their in-flight requests and upgraded connections
   * (`drained: true`), or when the drain timeout passed (`drained: false`); then the caller
   * may stop them.
   */
  switch(
    app: string,
    backends: Backend[],
    opts: SwitchOptions = {},
  ): Promise<{ drained: boolean }> {
    return this.conn.call('switch', { app, backends, ...opts }) as Promise<{ drained: boolean }>;
  }

  /** Serve `certs` (the whole set) in every worker from their next handshakes on. */
  setCerts(certs: RouterCerts): Promise<{ hosts: number; default: boolean }> {
    return this.conn.call('setCerts', { certs }) as Promise<{ hosts: number; default: boolean }>;
  }

  /** The hosts served with a certificate, and the default's names (never the keys). */
  certs(): Promise<{ hosts: string[]; default: string[] | null }> {
    return this.conn.call('certs') as Promise<{ hosts: string[]; default: string[] | null }>;
  }

  /** Answer ACME HTTP-01 `token` with `keyAuthorization` on every worker's HTTP port. */
  async addChallenge(token: string, keyAuthorization: string): Promise<void> {
    await this.conn.call('addChallenge', { token, keyAuthorization });
  }

  async removeChallenge(token: string): Promise<void> {
    await this.conn.call('removeChallenge', { token });
  }

  ping(): Promise<PingReply> {
    return this.conn.call('ping') as Promise<PingReply>;
  }

  stats(): Promise<RouterStats> {
    return this.conn.call('stats') as Promise<RouterStats>;
  }

  routes(): Promise<RouteTable> {
    return this.conn.call('routes') as Promise<RouteTable>;
  }

  close(): void {
    this.conn.close();
  }
}

/** Whether the node plane's router process of `dataDir` answers on its control socket. */
export async function routerAnswers(dataDir: string): Promise<boolean> {
  try {
    const client = await RouterClient.connect(dataDir, 1000);
    try {
      await client.ping();
      return true;
    } finally {
      client.close();
    }
  } catch {
    return false;
  }
}

export interface EnsureOptions extends Omit<RouterOptions, 'limits'> {
  /** How long to wait for a started router to answer. */
  timeoutMs?: number;
}

/**
 * Return a client of the router for `dataDir`, starting it first if its socket does not
 * answer. The router is spawned detached, in its own session, with its output in
 * `<dataDir>/logs/router/router.log`, so stopping the daemon does not stop it.
 */
export async function ensureRouterRunning(
  opts: EnsureOptions,
): Promise<{ client: RouterClient; started: boolean; pid: number }> {
  try {
    const client = await RouterClient.connect(opts.dataDir, 1000);
    const { pid } = await client.ping();
    return { client, started: false, pid };
  } catch {
    // Not running (or a stale socket): start it.
  }
  const paths = routerPaths(opts.dataDir);
  mkdirSync(paths.logDir, { recursive: true });
  const out = openSync(join(paths.logDir, 'router.log'), 'a', 0o600);
  const args = [
    fileURLToPath(new URL('./main.ts', import.meta.url)),
    '--data-dir',
    opts.dataDir,
    '--http-port',
    String(opts.httpPort),
    '--domain',
    opts.domain,
  ];
  if (opts.httpsPort !== undefined) args.push('--https-port', String(opts.httpsPort));
  if (opts.workers !== undefined) args.push('--workers', String(opts.workers));
  if (opts.host !== undefined) args.push('--host', opts.host);
  if (opts.beside === true) args.push('--beside');
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', out, out],
    cwd: '/',
  });
  closeSync(out);
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));

  // Generous: on a box busy with builds, two workers importing the router took over 15 s.
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    try {
      const client = await RouterClient.connect(opts.dataDir, 1000);
      const { pid } = await client.ping();
      return { client, started: true, pid };
    } catch {
      if (exited !== null)
        throw new RouterUnavailable(
          `router exited with ${exited} at start; see ${join(paths.logDir, 'router.log')}`,
        );
      if (Date.now() > deadline)
        throw new RouterUnavailable(`router did not answer on ${paths.socket} in time`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

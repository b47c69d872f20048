// The daemon's handle on the router process: started (or found) at daemon start, and
// re-found on a failed call, since the router may have been restarted on its own. Each
// (re)connection pushes the certificates again: the router keeps them in memory only.
import {
  ensureRouterRunning,
  RouterClient,
  type Backend,
  type RouteTable,
  type RouterCerts,
} from '../router/index.ts';
import type { RouterPort } from '../deploy/index.ts';
import type { AppHttps } from '../certs/index.ts';

export interface RouterLinkOptions {
  dataDir: string;
  httpPort: number;
  /** The HTTPS listener's port (0: any free one); none when undefined. */
  httpsPort?: number;
  domain: string;
  /** The current certificate set, pushed on every (re)connection. */
  certs?: () => RouterCerts;
  /** An app's HTTPS redirect and HSTS flags, added to each table pushed. */
  https?: (app: string) => AppHttps;
}

export class RouterLink implements RouterPort {
  private client: RouterClient | null = null;
  private readonly opts: RouterLinkOptions;
  /** The port the router's HTTPS listener is bound to, as it answered. */
  httpsPort: number | undefined;

  constructor(opts: RouterLinkOptions) {
    this.opts = opts;
  }

  async connect(): Promise<{ started: boolean; pid: number; httpsPort: number | undefined }> {
    const { certs: _c, https: _h, ...start } = this.opts;
    const r = await ensureRouterRunning(start);
    this.client?.close();
    this.client = r.client;
    this.httpsPort = (await r.client.ping()).httpsPort;
    // A router without an HTTPS listener (one adopted from before --https-port, which may not
    // know the operation either) gets no certificates: they are stored and pushed at its next start.
    if (this.opts.certs && this.httpsPort !== undefined) await r.client.setCerts(this.opts.certs());
    return { started: r.started, pid: r.pid, httpsPort: this.httpsPort };
  }

  private async call<T>(fn: (c: RouterClient) => Promise<T>): Promise<T> {
    if (this.client === null) await this.connect();
    try {
      return await fn(this.client!);
    } catch (e) {
      // Retry once against a (re)started router; a second failure is the caller's error.
      if (
        (e as { code?: string }).code === 'InvalidRouteTable' ||
        (e as { code?: string }).code === 'InvalidArgument'
      )
        throw e;
      await this.connect();
      return fn(this.client!);
    }
  }

  switch(app: string, backends: Backend[]): Promise<{ drained: boolean }> {
    return this.call((c) => c.switch(app, backends));
  }

  setRoutes(table: RouteTable): Promise<{ drained: boolean }> {
    const https = this.opts.https;
    if (https === undefined) return this.call((c) => c.setRoutes(table));
    const apps: RouteTable['apps'] = {};
    for (const [name, route] of Object.entries(table.apps)) {
      const h = https(name);
      apps[name] = { ...route, redirectHttps: h.redirectHttps, hsts: h.hsts };
    }
    return this.call((c) => c.setRoutes({ ...table, apps }));
  }

  setCerts(certs: RouterCerts): Promise<void> {
    return this.call(async (c) => {
      if (this.httpsPort !== undefined) await c.setCerts(certs);
    });
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}

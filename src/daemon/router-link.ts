// The daemon's handle on the router process: started (or found) at daemon start, and
// re-found on a failed call, since the router may have been restarted on its own.
import {
  ensureRouterRunning,
  RouterClient,
  type Backend,
  type RouteTable,
} from '../router/index.ts';
import type { RouterPort } from '../deploy/index.ts';

export class RouterLink implements RouterPort {
  private client: RouterClient | null = null;
  private readonly opts: { dataDir: string; httpPort: number; domain: string };

  constructor(opts: { dataDir: string; httpPort: number; domain: string }) {
    this.opts = opts;
  }

  async connect(): Promise<{ started: boolean; pid: number }> {
    const r = await ensureRouterRunning(this.opts);
    this.client?.close();
    this.client = r.client;
    return { started: r.started, pid: r.pid };
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
    return this.call((c) => c.setRoutes(table));
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}

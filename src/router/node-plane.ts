// The `node` data plane: our own router process (router.ts), started detached by
// `ensureRouterRunning` and driven over its control socket (control.ts).
import { mkdirSync } from 'node:fs';
import { accessLogPath } from './access-log.ts';
import { ensureRouterRunning, routerAnswers, RouterClient } from './client.ts';
import type {
  BackendLoad,
  DataPlane,
  PlaneConfig,
  PlaneConnected,
  PlaneHealth,
  SwitchOptions,
} from './data-plane.ts';
import { routerPaths } from './paths.ts';
import { saveTable } from './routes-file.ts';
import type { RouterCerts } from './certs.ts';
import type { Backend, RouteTable } from './table.ts';

export class NodePlane implements DataPlane {
  readonly kind = 'node' as const;
  readonly accessLogPath: string;
  private client: RouterClient | null = null;
  private readonly cfg: PlaneConfig;
  /** The last certificate set pushed, sent again to a router this plane reconnects to. */
  private lastCerts: RouterCerts | null = null;

  /** The data dir's running plane of the other kind, if any (select.ts: handover). */
  private readonly prior: () => Promise<DataPlane | null>;

  constructor(cfg: PlaneConfig, prior: () => Promise<DataPlane | null> = async () => null) {
    this.cfg = cfg;
    this.prior = prior;
    this.accessLogPath = accessLogPath(cfg.dataDir);
  }

  /** A connect under way: callers that find the router gone at once share one start. */
  private connecting: Promise<PlaneConnected> | null = null;

  connect(): Promise<PlaneConnected> {
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connectOnce(): Promise<PlaneConnected> {
    const { dataDir, host, domain, workers } = this.cfg;
    let { httpPort, httpsPort } = this.cfg;
    // Not running ours: take over from the other plane if it serves this data dir, on its
    // table (written where our router reads it at start) and its ports.
    const replaced = (await routerAnswers(dataDir)) ? null : await this.prior();
    if (replaced !== null) {
      mkdirSync(routerPaths(dataDir).dir, { recursive: true });
      saveTable(routerPaths(dataDir).routes, await replaced.routes());
      const h = await replaced.health();
      if (httpPort === 0) httpPort = h.httpPort;
      if (httpsPort === 0 && h.httpsPort !== undefined) httpsPort = h.httpsPort;
    }
    const r = await ensureRouterRunning({
      dataDir,
      httpPort,
      httpsPort,
      host,
      domain,
      workers,
      ...(replaced === null ? {} : { beside: true }),
    });
    this.client?.close();
    this.client = r.client;
    // A router (re)started since the last push knows no certificates: it keeps them in memory.
    if (this.lastCerts !== null && (await r.client.ping()).httpsPort !== undefined)
      await r.client.setCerts(this.lastCerts);
    return { started: r.started, pid: r.pid, ...(replaced === null ? {} : { replaced }) };
  }

  async revive(): Promise<PlaneConnected | null> {
    try {
      if (this.client !== null) {
        await this.client.ping();
        return null;
      }
    } catch {
      // not answering: start it again below
    }
    const r = await this.connect();
    return r.started ? r : null;
  }

  private async call<T>(fn: (c: RouterClient) => Promise<T>): Promise<T> {
    if (this.client === null) await this.connect();
    try {
      return await fn(this.client!);
    } catch (e) {
      // Retry once against a (re)started router; a second failure is the caller's error.
      const code = (e as { code?: string }).code;
      if (code === 'InvalidRouteTable' || code === 'InvalidArgument') throw e;
      await this.connect();
      return fn(this.client!);
    }
  }

  setRoutes(table: RouteTable, opts: SwitchOptions = {}): Promise<{ drained: boolean }> {
    return this.call((c) => c.setRoutes(table, opts));
  }

  switch(
    app: string,
    backends: Backend[],
    opts: SwitchOptions = {},
  ): Promise<{ drained: boolean }> {
    return this.call((c) => c.switch(app, backends, opts));
  }

  routes(): Promise<RouteTable> {
    return this.call((c) => c.routes());
  }

  async load(): Promise<BackendLoad[]> {
    const stats = await this.call((c) => c.stats());
    // Every worker has its own pool per backend: the plane's count is their sum.
    const sum = new Map<string, BackendLoad>();
    for (const w of stats.workers)
      for (const [app, list] of Object.entries(w.apps))
        for (const u of list) {
          const k = `${app} ${u.upstream}`;
          const s = sum.get(k) ?? {
            app,
            upstream: u.upstream,
            ...(u.id === undefined ? {} : { id: u.id }),
            inflight: 0,
            requests: 0,
            active: true,
          };
          s.inflight += u.inflight + u.upgraded;
          s.requests += u.requests;
          sum.set(k, s);
        }
    return [...sum.values()];
  }

  async health(): Promise<PlaneHealth> {
    const p = await this.call((c) => c.ping());
    return { kind: 'node', ...p };
  }

  async setCerts(certs: RouterCerts): Promise<void> {
    this.lastCerts = certs;
    await this.call((c) => c.setCerts(certs));
  }

  async addChallenge(token: string, keyAuthorization: string): Promise<void> {
    await this.call((c) => c.addChallenge(token, keyAuthorization));
  }

  async removeChallenge(token: string): Promise<void> {
    await this.call((c) => c.removeChallenge(token));
  }

  /** The certificate set the router serves, without keys (what was pushed, as it parsed). */
  certs(): Promise<{ hosts: string[]; default: string[] | null }> {
    return this.call((c) => c.certs());
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }

  async stop(): Promise<void> {
    const { pid } = await this.health();
    this.close();
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      if (Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

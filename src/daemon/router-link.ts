// The daemon's handle on the data plane (src/router/data-plane.ts): started or adopted at
// daemon start, re-found on a failed call by the plane itself (it may have been restarted
// on its own). Each (re)connection pushes the certificates again: the node plane keeps them
// in memory only, and haproxy's own copies may be older than the daemon's store.
import type {
  Backend,
  DataPlane,
  PlaneConnected,
  RouteTable,
  RouterCerts,
} from '../router/index.ts';
import type { RouterPort } from '../deploy/index.ts';
import type { AppHttps } from '../certs/index.ts';

export interface RouterLinkOptions {
  /** The current certificate set, pushed on every (re)connection. */
  certs?: () => RouterCerts;
  /** An app's HTTPS redirect and HSTS flags, added to each table pushed. */
  https?: (app: string) => AppHttps;
}

export interface LinkConnected {
  started: boolean;
  pid: number;
  httpsPort: number | undefined;
  /** The other plane this one took over from (src/router/select.ts: handover), stopped. */
  replaced?: string;
}

export class RouterLink implements RouterPort {
  readonly plane: DataPlane;
  private readonly opts: RouterLinkOptions;
  /** The port the plane's HTTPS listener is bound to, as it answered. */
  httpsPort: number | undefined;

  constructor(plane: DataPlane, opts: RouterLinkOptions = {}) {
    this.plane = plane;
    this.opts = opts;
  }

  async connect(): Promise<LinkConnected> {
    return this.settle(await this.plane.connect());
  }

  /**
   * Starts the plane again if it stopped answering (killed, crashed) since the last call, and
   * gives it the certificates as connect does; null when it answered. The daemon calls this
   * every few seconds: a front door that died comes back without waiting for a deploy.
   */
  async revive(): Promise<LinkConnected | null> {
    const r = await this.plane.revive();
    return r === null ? null : this.settle(r);
  }

  private async settle(r: PlaneConnected): Promise<LinkConnected> {
    this.httpsPort = (await this.plane.health()).httpsPort;
    // A plane without an HTTPS listener (one adopted from before --https-port, or a plane
    // that cannot serve HTTPS yet) gets no certificates: they are stored and pushed at its
    // next start.
    if (this.opts.certs && this.httpsPort !== undefined)
      await this.plane.setCerts(this.opts.certs());
    // The plane this one took over from leaves only now that this one has the table and the
    // certificates: it drains what it holds, then exits.
    if (r.replaced !== undefined) await r.replaced.stop();
    return {
      started: r.started,
      pid: r.pid,
      httpsPort: this.httpsPort,
      ...(r.replaced === undefined ? {} : { replaced: r.replaced.kind }),
    };
  }

  switch(app: string, backends: Backend[]): Promise<{ drained: boolean }> {
    return this.plane.switch(app, backends);
  }

  setRoutes(table: RouteTable): Promise<{ drained: boolean }> {
    const https = this.opts.https;
    if (https === undefined) return this.plane.setRoutes(table);
    const apps: RouteTable['apps'] = {};
    for (const [name, route] of Object.entries(table.apps)) {
      const h = https(name);
      apps[name] = { ...route, redirectHttps: h.redirectHttps, hsts: h.hsts };
    }
    return this.plane.setRoutes({ ...table, apps });
  }

  async setCerts(certs: RouterCerts): Promise<void> {
    if (this.httpsPort !== undefined) await this.plane.setCerts(certs);
  }

  /** ACME HTTP-01 (src/certs/challenges.ts): the router answers `token` on its HTTP port. */
  async addChallenge(token: string, keyAuthorization: string): Promise<void> {
    await this.plane.addChallenge(token, keyAuthorization);
  }

  async removeChallenge(token: string): Promise<void> {
    await this.plane.removeChallenge(token);
  }

  close(): void {
    this.plane.close();
  }
}

// The live table of one data plane. A new table is compiled aside and swapped in with one
// assignment, so a request sees either the old table or the new one, never a mix; upstreams
// that left the table are retired and drained.
import { HostIndex, type AppRoute, type RouteTable } from './table.ts';
import { Upstream, UpstreamSet, type UpstreamLimits } from './upstream.ts';
import { DEFAULT_MAX_BODY_BYTES } from './limits.ts';

export { DEFAULT_MAX_BODY_BYTES };

export interface AppState {
  readonly name: string;
  readonly route: AppRoute;
  readonly upstreams: UpstreamSet;
  readonly maxBodyBytes: number;
}

interface Compiled {
  readonly table: RouteTable;
  readonly apps: Map<string, AppState>;
  readonly hosts: HostIndex<AppState>;
}

export class RouteState {
  private current: Compiled;
  private readonly limits: UpstreamLimits;

  constructor(limits: UpstreamLimits) {
    this.limits = limits;
    this.current = compile({ apps: {}, domain: 'localhost' }, new Map(), limits).compiled;
  }

  get table(): RouteTable {
    return this.current.table;
  }

  lookup(host: string): AppState | undefined {
    return this.current.hosts.lookup(host);
  }

  app(name: string): AppState | undefined {
    return this.current.apps.get(name);
  }

  /**
   * Swap in `table`. Resolves once every upstream that left it has no exchange in flight
   * (true), or when `drainTimeoutMs` passed first (false).
   */
  apply(table: RouteTable, drainTimeoutMs: number): Promise<boolean> {
    const { compiled, retired } = compile(table, this.current.apps, this.limits);
    this.current = compiled;
    if (retired.length === 0) return Promise.resolve(true);
    return Promise.all(retired.map((u) => u.retire(drainTimeoutMs))).then((all) =>
      all.every(Boolean),
    );
  }

  /** Retire everything (shutdown). */
  close(drainTimeoutMs: number): Promise<boolean> {
    return this.apply({ apps: {}, domain: this.current.table.domain }, drainTimeoutMs);
  }

  stats(): StateStats {
    const apps: StateStats['apps'] = {};
    for (const a of this.current.apps.values()) {
      apps[a.name] = a.upstreams.list.map((u) => ({
        upstream: u.key,
        id: u.backend.id,
        inflight: u.inflight,
        upgraded: u.upgraded,
        requests: u.requests,
      }));
    }
    return { apps };
  }
}

export interface StateStats {
  apps: {
    [app: string]: {
      upstream: string;
      id?: string;
      inflight: number;
      upgraded: number;
      requests: number;
    }[];
  };
}

function compile(
  table: RouteTable,
  previous: Map<string, AppState>,
  limits: UpstreamLimits,
): { compiled: Compiled; retired: Upstream[] } {
  const apps = new Map<string, AppState>();
  const kept = new Set<Upstream>();
  for (const [name, route] of Object.entries(table.apps)) {
    // An upstream that stays keeps its pool and its in-flight count, so a switch that
    // keeps some processes does not wait on (or cut) them.
    const old = new Map((previous.get(name)?.upstreams.list ?? []).map((u) => [u.key, u]));
    const running = route.state !== 'stopped';
    const list = running
      ? route.backends.map((b) => {
          const reuse = old.get(`${b.host}:${b.port}`);
          if (reuse) kept.add(reuse);
          return reuse ?? new Upstream(b, limits);
        })
      : [];
    apps.set(name, {
      name,
      route,
      upstreams: new UpstreamSet(list),
      maxBodyBytes: route.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    });
  }
  const retired: Upstream[] = [];
  for (const a of previous.values())
    for (const u of a.upstreams.list) if (!kept.has(u)) retired.push(u);
  return { compiled: { table, apps, hosts: new HostIndex(table, (n) => apps.get(n)!) }, retired };
}

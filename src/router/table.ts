// The route table: what the daemon pushes, what the router persists, and the one validator
// at the router's border (STYLE.md §6). Everything past `parseRouteTable` trusts its shape.
import { InvalidArgument, InvalidRouteTable } from '../errors/index.ts';
// The router process loads these two files only, not the SQLite-backed state behind apps/index.ts.
import { isAppName } from '../apps/name.ts';
import { isHostname, parseDomain as parseAppDomain } from '../apps/validate.ts';

export interface Backend {
  host: string;
  port: number;
  /** Who this is (e.g. `web.1` of release v7); shown in stats, not used for routing. */
  id?: string;
}

export interface AppRoute {
  /** Custom domains: exact (`www.example.com`) or wildcard (`*.example.com`). */
  domains: string[];
  backends: Backend[];
  maxBodyBytes?: number;
  redirectHttps?: boolean;
  /** Send Strict-Transport-Security on HTTPS responses (only when asked: it pins browsers). */
  hsts?: boolean;
  state?: 'running' | 'stopped';
}

export interface RouteTable {
  apps: { [app: string]: AppRoute };
  /** `<app>.<domain>` always routes to the app. */
  domain: string;
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new InvalidRouteTable(message, details);
}

/** The API's own domain rule (apps/validate.ts), so the router serves exactly what the API accepts. */
function parseDomain(raw: unknown, app: string): string {
  if (typeof raw !== 'string') fail(`app ${app}: domain must be a string`, { app });
  try {
    return parseAppDomain(raw);
  } catch (e) {
    if (e instanceof InvalidArgument)
      fail(`app ${app}: invalid domain "${raw}"`, { app, domain: raw });
    throw e;
  }
}

function parseBackend(raw: unknown, app: string): Backend {
  if (typeof raw !== 'object' || raw === null)
    fail(`app ${app}: backend must be an object`, { app });
  const { host, port, id } = raw as Record<string, unknown>;
  if (typeof host !== 'string' || !(IPV4.test(host) || isHostname(host))) {
    fail(`app ${app}: backend host must be an IPv4 address or host name`, {
      app,
      host: String(host),
    });
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    fail(`app ${app}: backend port must be 1–65535`, { app, port: String(port) });
  }
  if (id !== undefined && typeof id !== 'string')
    fail(`app ${app}: backend id must be a string`, { app });
  return id === undefined ? { host, port } : { host, port, id };
}

export function parseBackends(raw: unknown, app: string): Backend[] {
  if (!Array.isArray(raw)) fail(`app ${app}: backends must be an array`, { app });
  return raw.map((b) => parseBackend(b, app));
}

export function parseAppRoute(raw: unknown, app: string): AppRoute {
  if (!isAppName(app)) fail(`invalid app name "${app}"`, { app });
  if (typeof raw !== 'object' || raw === null) fail(`app ${app}: route must be an object`, { app });
  const r = raw as Record<string, unknown>;
  const domains = r.domains === undefined ? [] : r.domains;
  if (!Array.isArray(domains)) fail(`app ${app}: domains must be an array`, { app });
  const out: AppRoute = {
    domains: domains.map((d) => parseDomain(d, app)),
    backends: parseBackends(r.backends ?? [], app),
  };
  if (r.maxBodyBytes !== undefined) {
    if (
      typeof r.maxBodyBytes !== 'number' ||
      !Number.isSafeInteger(r.maxBodyBytes) ||
      r.maxBodyBytes < 0
    ) {
      fail(`app ${app}: maxBodyBytes must be a non-negative integer`, { app });
    }
    out.maxBodyBytes = r.maxBodyBytes;
  }
  if (r.redirectHttps !== undefined) {
    if (typeof r.redirectHttps !== 'boolean')
      fail(`app ${app}: redirectHttps must be a boolean`, { app });
    out.redirectHttps = r.redirectHttps;
  }
  if (r.hsts !== undefined) {
    if (typeof r.hsts !== 'boolean') fail(`app ${app}: hsts must be a boolean`, { app });
    out.hsts = r.hsts;
  }
  if (r.state !== undefined) {
    if (r.state !== 'running' && r.state !== 'stopped')
      fail(`app ${app}: state must be running or stopped`, { app });
    out.state = r.state;
  }
  return out;
}

export function parseRouteTable(raw: unknown): RouteTable {
  if (typeof raw !== 'object' || raw === null) fail('route table must be an object');
  const t = raw as Record<string, unknown>;
  if (typeof t.domain !== 'string') fail('route table: domain is required');
  const domain = t.domain.toLowerCase().replace(/\.$/, '');
  if (!isHostname(domain)) fail(`route table: invalid domain "${t.domain}"`, { domain: t.domain });
  if (typeof t.apps !== 'object' || t.apps === null || Array.isArray(t.apps))
    fail('route table: apps must be an object');
  const apps: { [app: string]: AppRoute } = {};
  for (const [name, route] of Object.entries(t.apps)) apps[name] = parseAppRoute(route, name);
  return { apps, domain };
}

/** Lower-cased host of a Host header (port and a trailing dot removed), or null if malformed. */
export function hostOf(header: string): string | null {
  let h = header;
  if (h.charCodeAt(0) === 91 /* [ */) {
    // IPv6 literal (RFC 3986 §3.2.2): never an app's host, but well-formed.
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    return /^[0-9a-fA-F:.]+$/.test(h.slice(1, end)) ? h.slice(0, end + 1).toLowerCase() : null;
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    const port = h.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port)) return null;
    h = h.slice(0, colon);
  }
  h = h.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return isHostname(h) ? h : null;
}

/**
 * Host → app, compiled once per table. Exact names win; then the longest wildcard suffix
 * (`*.example.com` covers every name below example.com, as nginx's `server_name` does).
 */
export class HostIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly wildcard = new Map<string, T>();

  constructor(table: RouteTable, valueOf: (app: string) => T) {
    for (const [app, route] of Object.entries(table.apps)) {
      const v = valueOf(app);
      for (const d of route.domains) {
        if (d.startsWith('*.')) this.wildcard.set(d.slice(2), v);
        else this.exact.set(d, v);
      }
    }
    // The platform name last: an operator's custom domain may not steal `<app>.<domain>`.
    for (const app of Object.keys(table.apps))
      this.exact.set(`${app}.${table.domain}`, valueOf(app));
  }

  lookup(host: string): T | undefined {
    const hit = this.exact.get(host);
    if (hit !== undefined || this.wildcard.size === 0) return hit;
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const w = this.wildcard.get(host.slice(dot + 1));
      if (w !== undefined) return w;
    }
    return undefined;
  }
}

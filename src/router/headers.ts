// Header rules shared by the plain and the upgrade paths.
import { randomUUID } from 'node:crypto';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection): they
 * describe one connection and must not be forwarded. `expect` is answered here (Node sends
 * 100 Continue itself) and the upstream client cannot send it.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

// What an incoming X-Request-Id may look like to be kept: the usual UUID / ULID / hex /
// base64ish ids, short enough for a log line, and nothing that could split a header.
const REQUEST_ID = /^[A-Za-z0-9._:+/=@-]{8,128}$/;

export function requestIdFrom(incoming: string | undefined): string {
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** Connection options that name no field to remove (RFC 9110 §7.6.1). */
export const CONNECTION_OPTIONS: ReadonlySet<string> = new Set(['close', 'keep-alive', 'upgrade']);

/** Names a Connection header cannot have removed (the haproxy plane's paas.lua keeps them too). */
export const PROTECTED: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'x-request-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
]);

/** Extra names a Connection header lists for removal (RFC 9110 §7.6.1), beyond the usual. */
export function connectionListed(value: string): Set<string> | null {
  let out: Set<string> | null = null;
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n === '' || CONNECTION_OPTIONS.has(n)) continue;
    // A client may not strip what routing and message framing rest on, nor what the
    // platform itself tells the app (the request id, X-Forwarded-*).
    if (PROTECTED.has(n)) continue;
    (out ??= new Set()).add(n);
  }
  return out;
}

/**
 * The dashboard's cookies (src/dashboard/session.ts takes its names from here). Browsers
 * send a host's cookies to every port of that host (RFC 6265 §8.5), so an admin's session
 * would otherwise reach any app served on a name the dashboard is reached by.
 */
export const SESSION_COOKIE = 'paas_session';
export const LOGIN_COOKIE = 'paas_login';

/**
 * A Cookie header value (RFC 6265 §5.4: `name=value` pairs joined by `;`) without the
 * platform's cookies; the app's own cookies pass unchanged. Null when nothing is left.
 */
export function withoutPlatformCookies(value: string): string | null {
  if (!value.includes('paas_')) return value; // the common case, no allocation
  const kept: string[] = [];
  for (const pair of value.split(';')) {
    const eq = pair.indexOf('=');
    const name = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    if (name === SESSION_COOKIE || name === LOGIN_COOKIE || pair.trim() === '') continue;
    kept.push(pair.trim());
  }
  return kept.length === 0 ? null : kept.join('; ');
}

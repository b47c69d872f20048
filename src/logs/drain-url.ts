// The one validator of log-drain URLs, and the redacted form every person and log sees.
// Three kinds, as Heroku's drains: `syslog+tcp://host:port` and `syslog+tls://host:port`
// (RFC 5424 messages, RFC 6587 octet counting; RFC 5425 for TLS) and `https://…` (JSON
// batches POSTed). An https URL may carry Basic credentials or a token in its query, the way
// log services hand them out, so the URL as given is a secret: it is kept in state and used to
// connect, and anywhere else (API answers, errors, the daemon log) only `redacted` appears.
import { isIP } from 'node:net';
import { isHostname } from '../apps/index.ts';
import { InvalidDrainUrl } from '../errors/index.ts';

export type DrainKind = 'syslog+tcp' | 'syslog+tls' | 'https';
export const DRAIN_KINDS: readonly DrainKind[] = ['syslog+tcp', 'syslog+tls', 'https'];

export interface DrainUrl {
  readonly kind: DrainKind;
  /** Host name or IP address, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  /** The URL as it must be used: may hold credentials. Never show or log it. */
  readonly href: string;
  /** The URL with any password and query values replaced by `***`: safe to show. */
  readonly redacted: string;
  readonly __brand: 'DrainUrl';
}

/** Longest URL accepted; a log service's URL with a token fits many times over. */
const MAX_URL = 2048;

function refuse(reason: string, scheme: string | null): never {
  throw new InvalidDrainUrl(`invalid drain URL: ${reason}`, { scheme, reason });
}

export function parseDrainUrl(raw: unknown): DrainUrl {
  if (typeof raw !== 'string' || raw.length === 0) refuse('a drain URL is required', null);
  if (raw.length > MAX_URL) refuse(`longer than ${MAX_URL} characters`, null);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(raw)) refuse('it contains spaces or control characters', null);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    // The text itself is not repeated: a malformed URL may still hold a password.
    refuse(
      'not a URL (use syslog+tcp://host:port, syslog+tls://host:port or https://host/path)',
      null,
    );
  }
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  const kind = DRAIN_KINDS.find((k) => k === scheme);
  if (kind === undefined) {
    const hint =
      scheme === 'syslog' || scheme === 'tcp'
        ? ': say syslog+tcp:// for plain syslog, or syslog+tls://'
        : scheme === 'http'
          ? ': logs often hold secrets, so an HTTP drain must be https://'
          : '';
    refuse(
      `the scheme "${scheme}" is not one of ${DRAIN_KINDS.map((k) => `${k}://`).join(', ')}${hint}`,
      scheme,
    );
  }
  // Special schemes (https) lower-case their host; syslog+… are opaque hosts to WHATWG URL.
  let host = u.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') refuse('it names no host', kind);
  if (isIP(host) === 0 && !isHostname(host))
    refuse('its host is not a host name or IP address', kind);
  if (u.hash !== '') refuse('a drain URL has no #fragment', kind);
  let port: number;
  if (kind === 'https') {
    port = u.port === '' ? 443 : Number(u.port);
  } else {
    // Syslog has no well-known TCP port everyone uses (RFC 6587 names none): say it.
    if (u.port === '') refuse(`${kind}:// needs a port (${kind}://host:port)`, kind);
    port = Number(u.port);
    if (u.username !== '' || u.password !== '')
      refuse('syslog has no credentials: a syslog URL is host:port only', kind);
    if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '')
      refuse('a syslog URL has no path or query: host:port only', kind);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) refuse('its port is out of range', kind);
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  const href = kind === 'https' ? u.href : `${kind}://${hostPart}:${port}`;
  return { kind, host, port, href, redacted: redact(u, kind, hostPart, port), __brand: 'DrainUrl' };
}

/**
 * What may be shown of a URL: the password (or a user name standing alone, which services use
 * as a token), every query value, and any path segment shaped like a token (16+ characters
 * mixing letters and digits, as Loggly's `/bulk/<token>/`) become `***`.
 */
function redact(u: URL, kind: DrainKind, hostPart: string, port: number): string {
  if (kind !== 'https') return `${kind}://${hostPart}:${port}`;
  const user = u.username === '' ? '' : u.password === '' ? '***@' : `${u.username}:***@`;
  const path = u.pathname
    .split('/')
    .map((seg) => (seg.length >= 16 && /[0-9]/.test(seg) && /[a-z]/i.test(seg) ? '***' : seg))
    .join('/');
  const params = [...u.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=***`);
  const query = params.length === 0 ? '' : `?${params.join('&')}`;
  return `https://${user}${hostPart}${port === 443 ? '' : `:${port}`}${path}${query}`;
}

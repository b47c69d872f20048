// The certificates a data plane serves: pushed by the daemon over the control socket (like
// the route table), validated at this border, compiled into TLS contexts aside and swapped
// in with one assignment, so a handshake sees the old set or the new one and connections
// already up keep the certificate they started with.
import tls from 'node:tls';
import { InvalidArgument } from '../errors/index.ts';
import { isHostname } from '../apps/validate.ts';

export interface RouterCert {
  /** PEM: the leaf, then its intermediates. */
  cert: string;
  key: string;
}

export interface RouterCerts {
  /** Exact host (`www.example.com`) or wildcard (`*.example.com`) → its certificate. */
  hosts: { [host: string]: RouterCert };
  /** The operator's default (for `<app>.<domain>`), with the names it covers. */
  default: (RouterCert & { names: string[] }) | null;
}

export const NO_CERTS: RouterCerts = { hosts: {}, default: null };

/**
 * Mozilla's "intermediate" profile (TLS 1.2 + 1.3, forward-secret AEAD suites only), as
 * nginx and haproxy configurations generated from it list them. TLS 1.3 suites are
 * OpenSSL's defaults and are not affected by this list.
 */
export const TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const TLS_MIN_VERSION = 'TLSv1.2' as const;

function isCertHost(h: string): boolean {
  return isHostname(h.startsWith('*.') ? h.slice(2) : h);
}

function parseCert(raw: unknown, what: string): RouterCert {
  if (typeof raw !== 'object' || raw === null) throw new InvalidArgument(`${what}: not an object`);
  const { cert, key } = raw as Record<string, unknown>;
  if (typeof cert !== 'string' || typeof key !== 'string')
    throw new InvalidArgument(`${what}: cert and key must be PEM strings`);
  return { cert, key };
}

/** The one validator of a pushed certificate set. */
export function parseRouterCerts(raw: unknown): RouterCerts {
  if (typeof raw !== 'object' || raw === null)
    throw new InvalidArgument('certificates: not an object');
  const r = raw as Record<string, unknown>;
  if (typeof r.hosts !== 'object' || r.hosts === null || Array.isArray(r.hosts))
    throw new InvalidArgument('certificates: hosts must be an object');
  const hosts: RouterCerts['hosts'] = {};
  for (const [host, c] of Object.entries(r.hosts)) {
    const h = host.toLowerCase();
    if (!isCertHost(h))
      throw new InvalidArgument(`certificates: invalid host ${JSON.stringify(host)}`);
    hosts[h] = parseCert(c, `certificate for ${h}`);
  }
  let def: RouterCerts['default'] = null;
  if (r.default !== null && r.default !== undefined) {
    const names = (r.default as Record<string, unknown>).names;
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && isCertHost(n)))
      throw new InvalidArgument('certificates: default.names must be host names');
    def = {
      ...parseCert(r.default, 'default certificate'),
      names: names.map((n: string) => n.toLowerCase()),
    };
  }
  return { hosts, default: def };
}

/** TLS options of a context: every certificate is served with the same protocol floor. */
export function contextOptions(c: RouterCert): tls.SecureContextOptions {
  return {
    cert: c.cert,
    key: c.key,
    minVersion: TLS_MIN_VERSION,
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
  };
}

/** A compiled, immutable set: SNI name → context. */
export class CertIndex {
  private readonly exact = new Map<string, tls.SecureContext>();
  readonly fallback: tls.SecureContext | null;
  private readonly defaultNames: readonly string[];

  /** Throws (InvalidArgument) on a PEM OpenSSL refuses; the set in service stays. */
  constructor(certs: RouterCerts) {
    for (const [host, c] of Object.entries(certs.hosts)) this.exact.set(host, compile(c, host));
    this.fallback = certs.default ? compile(certs.default, 'the default') : null;
    this.defaultNames = certs.default?.names ?? [];
  }

  get size(): number {
    return this.exact.size + (this.fallback ? 1 : 0);
  }

  /**
   * The host's own certificate (exact, then a wildcard one label up), else the default.
   * Never another host's: an unknown name gets the operator's default or nothing.
   */
  select(servername: string): tls.SecureContext | null {
    const host = servername.toLowerCase();
    return this.own(host) ?? this.fallback;
  }

  /** Whether `host` is served with a certificate that names it (redirects wait for one). */
  covers(host: string): boolean {
    if (this.own(host) !== undefined) return true;
    if (this.defaultNames.includes(host)) return true;
    const dot = host.indexOf('.');
    return dot > 0 && this.defaultNames.includes(`*${host.slice(dot)}`);
  }

  private own(host: string): tls.SecureContext | undefined {
    const hit = this.exact.get(host);
    if (hit !== undefined) return hit;
    const dot = host.indexOf('.');
    return dot > 0 ? this.exact.get(`*${host.slice(dot)}`) : undefined;
  }
}

function compile(c: RouterCert, what: string): tls.SecureContext {
  try {
    return tls.createSecureContext(contextOptions(c));
  } catch (e) {
    throw new InvalidArgument(`certificate for ${what} refused by TLS: ${(e as Error).message}`);
  }
}

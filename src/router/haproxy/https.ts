// HTTPS and ACME HTTP-01 on the haproxy plane, as the node plane does them (proxy.ts,
// certs.ts, challenge.ts): the config lines added to haproxy.cfg's one frontend and the
// files behind them. Everything a certificate push, a redirect toggle or a challenge changes
// is a file haproxy reads at start and a runtime object (a crt-list entry, a certificate
// store, a map) the plane changes over the runtime socket, so none of them reloads haproxy;
// the one exception is the operator default appearing or going (plane.ts says why).
import { CHALLENGE_PREFIX } from '../challenge.ts';
import { TLS_CIPHERS, TLS_MIN_VERSION, type RouterCerts } from '../certs.ts';
import type { RouteTable } from '../table.ts';

export interface HttpsListener {
  port: number;
  /**
   * Whether the operator's default certificate is served (the crt-list's first line, given
   * to a name no other certificate matches). Without one the bind is `strict-sni`: a name no
   * certificate matches, or no name, gets a TLS alert, never another app's certificate.
   */
  hasDefault: boolean;
}

/** The part of the config input these rules read (config.ts's ConfigInput has it). */
export interface HttpsRuleInput {
  host: string;
  https?: HttpsListener;
  paths: {
    crtList: string;
    tlsExact: string;
    tlsWild: string;
    httpsFlags: string;
    challenges: string;
  };
}

export const HSTS_VALUE = 'max-age=31536000';

/** The HTTPS bind of the frontend: crt-list, ALPN h2 + http/1.1, TLS 1.2+, our ciphers. */
export function httpsBind(c: HttpsRuleInput): string[] {
  if (c.https === undefined) return [];
  const strict = c.https.hasDefault ? '' : ' strict-sni';
  return [
    `  bind ${c.host}:${c.https.port} ssl crt-list ${c.paths.crtList}${strict} alpn h2,http/1.1 ssl-min-ver ${TLS_MIN_VERSION} ciphers ${TLS_CIPHERS}`,
  ];
}

/**
 * ACME HTTP-01 (challenge.ts): on plain HTTP haproxy owns the challenge prefix, before any
 * Host check, routing or redirect. Only the exact path of a pushed token (the map's key: no
 * query, no decoding, no suffix) with GET or HEAD answers 200; anything else under the
 * prefix is our 404, never a request to an app.
 */
export function acmeRules(c: HttpsRuleInput): string[] {
  // The path first: the cheaper test, and false for nearly every request.
  const on = `{ url_beg ${CHALLENGE_PREFIX} } !tls`;
  return [
    `  http-request set-var(txn.acme) url,map_str(${c.paths.challenges}) if ${on} METH_GET`,
    '  http-request return status 200 content-type application/octet-stream hdr cache-control no-store lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
    `  http-request return status 404 content-type "text/plain; charset=utf-8" hdr cache-control no-store string "no such ACME challenge\\n" if ${on}`,
  ];
}

/**
 * HTTP → HTTPS 308 (proxy.ts redirectToHttps): for an app that asked (`r` in its flags), on
 * plain HTTP, only when a certificate covers the host (certs.ts CertIndex.covers: an exact
 * name, or a wildcard one label up, of a host's own certificate or of the default's names),
 * never for the ACME path.
 */
export function httpsRedirect(c: HttpsRuleInput): string[] {
  if (c.https === undefined) return [];
  const port = c.https.port === 443 ? '' : `:${c.https.port}`;
  return [
    `  http-request set-var(txn.hx) var(txn.app),map_str(${c.paths.httpsFlags})`,
    `  http-request set-var(txn.tls) var(txn.host),map_str(${c.paths.tlsExact}) if { var(txn.hx) -m sub r } !tls`,
    `  http-request set-var(txn.tls) var(txn.host),regsub(^[^.]*,),map_str(${c.paths.tlsWild}) if { var(txn.hx) -m sub r } !tls !{ var(txn.tls) -m found }`,
    // 308 keeps the method and body (RFC 9110 §15.4.9).
    `  http-request redirect code 308 location https://%[var(txn.host)]${port}%[pathq] if { var(txn.hx) -m sub r } !tls { var(txn.tls) -m found } !{ path_beg ${CHALLENGE_PREFIX} }`,
  ];
}

/** HSTS on the app's answers over HTTPS, only when asked (never over HTTP: RFC 6797 §7.2). */
export function hstsRule(c: HttpsRuleInput): string[] {
  return c.https === undefined
    ? []
    : [
        `  http-response set-header strict-transport-security ${HSTS_VALUE} if tls { var(txn.hx) -m sub h }`,
      ];
}

/** App → `r`/`h`/`rh`: which apps redirect to HTTPS and which send HSTS. */
export function renderHttpsFlags(table: RouteTable): string {
  let out = '';
  for (const [app, r] of Object.entries(table.apps)) {
    const f = `${r.redirectHttps ? 'r' : ''}${r.hsts ? 'h' : ''}`;
    if (f !== '') out += `${app} ${f}\n`;
  }
  return out;
}

/** Which certificate names a set has, without keys (what state.json keeps). */
export interface CertNames {
  hosts: string[];
  /** The default's names, or null without a default. */
  default: string[] | null;
}

export function certNames(certs: RouterCerts): CertNames {
  return {
    hosts: Object.keys(certs.hosts).sort(),
    default: certs.default === null ? null : [...certs.default.names],
  };
}

/**
 * The names a redirect may send to HTTPS (CertIndex.covers): exact names, and the suffixes
 * (`.example.com`) of wildcards, matched one label up only, as a wildcard certificate is.
 */
export function renderCovers(names: CertNames): { exact: string; wild: string } {
  const exact = new Set<string>();
  const wild = new Set<string>();
  for (const n of [...names.hosts, ...(names.default ?? [])])
    if (n.startsWith('*.')) wild.add(n.slice(1));
    else exact.add(n);
  const lines = (s: Set<string>): string => [...s].map((k) => `${k} 1\n`).join('');
  return { exact: lines(exact), wild: lines(wild) };
}

/** A certificate's PEM file: `*.` is not a file-name character we want, `_` is no host's. */
export const certFileName = (host: string): string => `${host.replace(/^\*\./, '_.')}.pem`;
export const DEFAULT_CERT_FILE = 'default.pem';

/**
 * One crt-list line per host, its SNI filter the host itself (exact or wildcard), not the
 * names inside the certificate: the control plane decides which host a certificate serves,
 * as on the node plane. The default comes first (the bind's default context) with `!*`, so
 * its own names never win over a host's certificate: it is only the fallback.
 */
export function crtListLine(dir: string, host: string): string {
  return `${dir}/${certFileName(host)} ${host}`;
}

export function renderCrtList(dir: string, names: CertNames): string {
  const lines: string[] = [];
  if (names.default !== null) lines.push(`${dir}/${DEFAULT_CERT_FILE} !*`);
  for (const h of names.hosts) lines.push(crtListLine(dir, h));
  return lines.map((l) => `${l}\n`).join('');
}

/** A PEM bundle as haproxy loads it: the chain, then the key, with no blank line (a blank
 * line ends a runtime-socket payload). */
export function pemBundle(c: { cert: string; key: string }): string {
  return `${`${c.cert}\n${c.key}`
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .join('\n')}\n`;
}

/** The challenge map: the exact request path of each token → its key authorization. */
export function renderChallenges(challenges: ReadonlyMap<string, string>): string {
  let out = '';
  for (const [token, ka] of challenges) out += `${CHALLENGE_PREFIX}${token} ${ka}\n`;
  return out;
}

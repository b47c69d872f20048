// haproxy.cfg from the route table. Everything a deploy or an app's life changes (server
// addresses, their ready/maint state, host maps, which backend an app uses, its body limit)
// is in slots and maps the runtime socket can change. A new app takes a spare backend, so
// only running out of spares or of an app's slots needs a (seamless) reload.
import { LOGGED_HOST_MAX, LOGGED_PATH_MAX } from '../access-log.ts';
import type { Limits } from '../limits.ts';
// limits.ts, not state.ts: state.ts is the node plane's (undici), which the daemon need not load.
import { DEFAULT_MAX_BODY_BYTES } from '../limits.ts';
import type { RouteTable } from '../table.ts';
import { acmeRules, httpsBind, httpsRedirect, hstsRule, type HttpsListener } from './https.ts';
import { CONNECTION_OPTIONS, HOP_BY_HOP, PROTECTED } from '../headers.ts';

/** One server line of an app's backend: a slot a backend process is put in at run time. */
export interface Slot {
  /** 1-based, `s<n>` in the config. */
  n: number;
  host: string;
  port: number;
  id?: string;
  /** In the table (ready); false: retired (maint), draining or free. */
  active: boolean;
}

export interface HaproxyPaths {
  dir: string;
  cfg: string;
  /**
   * The runtime socket of the haproxy serving: a symlink to its generation's socket. Each
   * process binds a socket path of its own (generation `n`: `admin-n.sock`), so that a
   * command meant for the new process of a reload cannot land on the old one.
   */
  admin: string;
  /** The pid of the haproxy serving (written by the plane: haproxy runs in the foreground). */
  pid: string;
  exact: string;
  wild: string;
  pages: string;
  lua: string;
  state: string;
  log: string;
  /** HTTPS (https.ts): PEM files (0600, dir 0700), the bind's crt-list, what they cover. */
  certs: string;
  crtList: string;
  tlsExact: string;
  tlsWild: string;
  /** App → the backend that serves it (an app's own, or a spare it took at run time). */
  backends: string;
  /** App → its request body limit in bytes, for apps whose limit is not the default. */
  bodyMax: string;
  /** App → its HTTPS flags (`r` redirect, `h` HSTS). */
  httpsFlags: string;
  /** ACME HTTP-01: challenge path → key authorization. */
  challenges: string;
  /**
   * A reload's hand-off: the sockets (plain, TLS) on which the new process takes the
   * requests the old one is left with, and the map that tells the old one to pass them.
   */
  handoff: string;
  handoffTls: string;
  handoffMap: string;
}

/** A backend of the configuration and its server slots. */
export interface BackendSlots {
  name: string;
  slots: Slot[];
}

export interface ConfigInput {
  backends: BackendSlots[];
  paths: HaproxyPaths;
  /** This generation's runtime socket (paths.admin links to the serving one's). */
  socket: string;
  host: string;
  httpPort: number;
  limits: Limits;
  threads: number;
  /** The HTTPS listener, when there is one (https.ts). */
  https?: HttpsListener;
}

/**
 * A reload's old process still answers the next request on each kept-alive connection it
 * holds (idle-close-on-response: closing them under a client about to send would fail that
 * request). Its routes are the old ones: a new app would be a 404, a switched one its old
 * servers. So the daemon marks it (HANDOFF_KEY in the hand-off map, over its runtime socket,
 * just before the reload) and, once stopping, it passes such a request whole to the new
 * process: over a unix socket only haproxy can reach, with the client's addresses in a
 * PROXY v2 header, through none of its own rules, and without an access line of its own.
 * A stop with no successor is not marked: the old process answers as before.
 */
export const HANDOFF_KEY = 'reloading';

/** The backend of an app: app names are [a-z0-9-], so the prefix keeps them apart from ours. */
export const backendName = (app: string): string => `app_${app}`;

/**
 * Spare backends in each configuration, taken by apps created at run time: adding a backend
 * takes a reload (a new worker, the old one's hand-off: HANDOFF_KEY), which costs a
 * configuration parse and a second process for as long as the old one has connections.
 * Each has SPARE_SLOTS servers; an app that needs more is given its own backend at the next
 * reload. Eight cost haproxy about a hundred kilobytes (bench/footprint).
 */
export const SPARE_BACKENDS = 8;
export const SPARE_SLOTS = 4;
export const spareName = (k: number): string => `spare_${k}`;

/** Concurrent client connections the haproxy plane accepts (Dokku's nginx: 768 a worker). */
export const MAX_CONNECTIONS = 4096;

/** TLS sessions haproxy keeps for resumption by session id. */
export const SSL_SESSIONS = 1000;

// A chunked body is counted against a limit below this while it fits the buffer.
const CHUNKED_COUNTED = 12_000;

/**
 * The 503 page file's key (it serves 502 too): the format, `-`, and txn.k when the request
 * reached an app's backend (`html-502`, `json-503`, `html-`). Built only when a page is.
 */
export const PAGE_KEY_503 = 'var(txn.fmt,html),concat(-,txn.k)';

// Statuses whose pages are ours (pages.ts). 502 shares the 503 page file: haproxy answers a
// refused connect with 503, turned into 502 below when the app has servers at all. 431 is
// not an `http-error` status haproxy accepts: its page is the body of the rule that denies.
export const PAGE_STATUSES = [400, 404, 408, 413, 431, 502, 503, 504] as const;

const ms = (v: number): string => `${Math.max(1, Math.round(v))}ms`;

// The request id rule of headers.ts (REQUEST_ID), as a PCRE.
const REQUEST_ID_RE = "'^[A-Za-z0-9._:+/=@-]{8,128}$'";
// isHostname (apps/validate.ts) after lower-casing, minus the port and a trailing dot, or an
// IPv6 literal: a host the node plane would accept.
const HOST_RE =
  "'^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)([.][a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$|^\\[[0-9a-f:.]+\\]$'";
// The hop-by-hop fields (headers.ts HOP_BY_HOP) the rules delete; haproxy itself deals
// with Connection, Transfer-Encoding and Upgrade.
const DELETED_HOP = [...HOP_BY_HOP].filter(
  (n) => n !== 'connection' && n !== 'transfer-encoding' && n !== 'upgrade',
);
// Header names (lower-case in haproxy) that a request's slower rules act on: a body, or a
// field deleted above. Derived from the same list, so the fast path cannot miss one.
const SLOW_HEADERS = `'(^|,)(${['content-length', 'transfer-encoding', ...DELETED_HOP].join('|')})(,|$)'`;
// A Connection value naming a token that is not an option (headers.ts CONNECTION_OPTIONS):
// a field the client wants stripped (paas.lua does it).
const CONNECTION_ACTS = `'(^|,)[[:space:]]*(?!(${[...CONNECTION_OPTIONS].join('|')})[[:space:]]*(,|$))[^,[:space:]]'`;
// The longest access line: the path and the Host at their worst once escaped (json() writes
// a byte as six at most), and the other fields.
const LOG_LINE_MAX = 6 * (LOGGED_PATH_MAX + LOGGED_HOST_MAX) + 1024;
// HTTPS: on the TLS port, or handed off from a reload's old process that took it there.
const TLS_ACL = ['  acl tls ssl_fc', '  acl tls so_name handoff-tls'];

export function renderConfig(c: ConfigInput): string {
  const { paths, limits } = c;
  const L: string[] = [];
  L.push(
    'global',
    // One process, no master: a reload is a new haproxy taking the listening sockets over
    // from the old one through this socket (-x), then telling it to finish (-sf). A master
    // would hold 12.5 MB resident besides its worker (bench/footprint).
    `  stats socket ${c.socket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 1m',
    // Access lines on stdout, which is the access log file (opened O_APPEND by the daemon).
    // Requests are logged at `err` (set-log-level, log-separate-errors) and the target keeps
    // `err` and above: haproxy's own warnings ("Proxy http stopped" on a reload) stay out
    // of a file that holds one JSON line per request and nothing else. A line holds the
    // longest path and Host logFormat lets through, escaped (haproxy cuts a longer one, and
    // a cut line is not JSON); the request line kept for it holds a whole logged path.
    `  log stdout len ${LOG_LINE_MAX} format raw local0 err`,
    `  tune.http.logurilen ${LOGGED_PATH_MAX + 64}`,
    `  nbthread ${c.threads}`,
    // Not derived from the open-files limit, which haproxy does by default: the systemd
    // unit's LimitNOFILE=1048576 would give half a million, and haproxy holds memory for
    // each allowed connection up front (about 64 bytes a descriptor: +64 MB idle).
    `  maxconn ${MAX_CONNECTIONS}`,
    // TLS 1.2 sessions resumed by id; TLS 1.3 and session tickets need no cache. haproxy's
    // default, 20000 sessions, is 4.8 MB resident once one process owns it (nginx's default
    // keeps no cache at all).
    `  tune.ssl.cachesize ${SSL_SESSIONS}`,
    `  lua-load ${paths.lua}`,
    // A head up to maxHeaderBytes + 1 KB fits the buffer (less the rewrite reserve), so one
    // just past the limit is parsed and answered 431 by a rule, with our page and a request
    // id, as the node plane does; a longer one is refused by haproxy's parser (400, as
    // nginx does). Not larger: with L7 retries haproxy copies the whole buffer for each
    // request it forwards (src/stconn.c), and a buffer of twice the limit cost 8-11% of the
    // kept-alive rate and put the per-request p99 over 1.2x nginx's (bench/router runs K-N).
    `  tune.bufsize ${limits.maxHeaderBytes + 2048}`,
    `  tune.maxrewrite 1024`,
    // A reload's old worker finishes what it serves, as a drain would, then goes.
    `  hard-stop-after ${ms(limits.drainTimeoutMs + 5000)}`,
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option dontlognull',
    '  option log-separate-errors',
    // A reload's old worker answers the next request on each kept-alive connection with
    // `connection: close` instead of closing idle ones under a client about to send.
    '  option idle-close-on-response',
    `  timeout connect ${ms(limits.connectTimeoutMs)}`,
    `  timeout client ${ms(limits.bodyTimeoutMs)}`,
    `  timeout server ${ms(limits.upstreamTimeoutMs)}`,
    `  timeout http-request ${ms(limits.headersTimeoutMs)}`,
    `  timeout http-keep-alive ${ms(limits.keepAliveTimeoutMs)}`,
    '  timeout tunnel 1h',
    '  timeout client-fin 5s',
    '  retries 1',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    '  balance roundrobin',
    // An idle upstream connection serves any client's next request, as the node plane's
    // undici pool and nginx's `keepalive` do. haproxy's default (`safe`) opens a new one
    // for the first request of each client connection: with a connection per request
    // that doubled the plane's CPU per request and halved its rate (bench/router).
    '  http-reuse always',
    // One JSON line per request in access-log.ts's shape (pino's level 30 = info).
    `  log-format '${logFormat()}'`,
    ...PAGE_STATUSES.filter((s) => s !== 502 && s !== 431).map(
      (s) =>
        `  http-error status ${s} content-type "text/html; charset=utf-8" lf-file ${paths.pages}/${s}.lf hdr x-paas-page 1`,
    ),
    '',
    'frontend http',
    `  bind ${c.host}:${c.httpPort}`,
    ...httpsBind(c),
    `  bind unix@${paths.handoff} mode 600 accept-proxy name handoff`,
    ...(c.https === undefined
      ? []
      : [`  bind unix@${paths.handoffTls} mode 600 accept-proxy name handoff-tls`]),
    ...TLS_ACL,
    `  http-request set-var(txn.handoff) bool(true) if { stopping } { str(${HANDOFF_KEY}),map(${paths.handoffMap}) -m found }`,
    // `stopping` first: only a reload's old process hands off, and the flag costs no lookup.
    '  http-request set-log-level silent if { stopping } { var(txn.handoff) -m bool }',
    '  http-request allow if { stopping } { var(txn.handoff) -m bool }',
    '  http-request set-log-level err',
    // Request id: a valid incoming one is kept, else a new UUID.
    `  http-request set-var(txn.rid) req.fhdr(x-request-id) if { req.hdr_cnt(x-request-id) eq 1 } { req.fhdr(x-request-id) -m reg ${REQUEST_ID_RE} }`,
    '  http-request set-var(txn.rid) uuid(4) unless { var(txn.rid) -m found }',
    '  http-request set-header x-request-id %[var(txn.rid)]',
    ...acmeRules(c),
    // pages.ts wantsJson: JSON when the client asks for JSON and not for HTML. Unset is
    // html: every reader of txn.fmt defaults to it (a rule a request less).
    '  http-request set-var(txn.fmt) str(json) if { req.fhdr(accept) -m sub json } !{ req.fhdr(accept) -m sub text/html }',
    // req.hdrs is the header block (the fields and the blank line), as Node's maxHeaderSize.
    `  http-request deny status 431 content-type "text/html; charset=utf-8" lf-file ${paths.pages}/431.lf hdr x-paas-page 1 if { req.hdrs,length gt ${limits.maxHeaderBytes} }`,
    "  http-request deny deny_status 400 if !{ req.hdr_cnt(host) eq 1 } || { url -m str '*' }",
    // The Host header is read once; the checks after it read the variable. The common case
    // (no port, no trailing dot) costs no regex, and a host found in the exact map is valid
    // by construction; any other must be valid (else 400) before the wildcards, which match
    // by suffix, are looked up (else 404).
    '  http-request set-var(txn.host) req.hdr(host),lower',
    "  http-request deny deny_status 400 if { var(txn.host) -m sub : } !{ var(txn.host) -m beg [ } !{ var(txn.host) -m reg '^[^:]*:[0-9]{1,5}$' }",
    '  http-request set-var(txn.host) var(txn.host),regsub(:[0-9]+$,) if { var(txn.host) -m sub : }',
    '  http-request set-var(txn.host) var(txn.host),regsub([.]$,) if { var(txn.host) -m end . }',
    `  http-request set-var(txn.app) var(txn.host),map_str(${paths.exact})`,
    `  http-request deny deny_status 400 if !{ var(txn.app) -m found } !{ var(txn.host) -m reg ${HOST_RE} }`,
    `  http-request set-var(txn.app) var(txn.host),map_end(${paths.wild}) unless { var(txn.app) -m found }`,
    '  http-request deny deny_status 404 unless { var(txn.app) -m found }',
    ...httpsRedirect(c),
    // Absolute-form targets go upstream in origin-form, as the node plane sends them.
    '  http-request set-uri %[pathq] if { url_beg -i http:// https:// }',
    // Fast path: a GET or HEAD with no body, no hop-by-hop field to strip, no Connection
    // token to act on and none of the dashboard's cookies needs none of the rules below, so
    // it skips them (one test instead of a dozen header scans; bench/router). `allow` ends
    // this frontend's rules only: the app backend's (X-Forwarded-*, forwardfor) still run.
    `  http-request allow if { method GET HEAD } !{ req.hdr_names -m reg ${SLOW_HEADERS} } !{ req.fhdr(cookie) -m sub paas_ } !{ req.fhdr(connection) -m reg -i ${CONNECTION_ACTS} }`,
    // Body slowloris: haproxy does not time out a client that stops sending a body the
    // server waits for, so the body is awaited here first (408 on silence), up to a
    // buffer's worth; past that only the server's timeout bounds it.
    `  http-request wait-for-body time ${ms(limits.bodyTimeoutMs)} if { req.hdr_val(content-length) gt 0 } || { req.hdr(transfer-encoding) -m found }`,
    // Hop-by-hop fields (headers.ts HOP_BY_HOP); the Connection-listed ones and the
    // dashboard's cookies need code (paas.lua), run only when such a header is there.
    ...DELETED_HOP.map((n) => `  http-request del-header ${n}`),
    `  http-request lua.paas_clean if { req.fhdr(cookie) -m sub paas_ } || { req.fhdr(connection) -m reg -i ${CONNECTION_ACTS} }`,
    // The body limit, by a map so an app's limit changes at run time: a declared length is
    // checked as it arrives; a chunked body (or an HTTP/2 one, which declares none) is
    // counted while it fits the buffer (past that only the server's timeout bounds it; see
    // README: the haproxy plane's gaps). GET and HEAD without a body skip the lookup.
    `  http-request set-var(txn.max) var(txn.app),map_str_int(${paths.bodyMax},${DEFAULT_MAX_BODY_BYTES}) if { req.hdr(content-length) -m found } || { req.hdr(transfer-encoding) -m found } || !METH_GET !METH_HEAD`,
    '  http-request deny deny_status 413 if { req.hdr_val(content-length),sub(txn.max) gt 0 }',
    `  http-request wait-for-body time ${ms(limits.bodyTimeoutMs)} at-least ${CHUNKED_COUNTED + 1} if { req.hdr(transfer-encoding) -m found } { var(txn.max) -m int lt ${CHUNKED_COUNTED} }`,
    `  http-request deny deny_status 413 if { var(txn.max) -m int lt ${CHUNKED_COUNTED} } { req.body_size,sub(txn.max) gt 0 }`,
    '  use_backend handoff if { var(txn.handoff) -m bool }',
    `  use_backend %[var(txn.app),map(${paths.backends})]`,
    ...hstsRule(c),
    // Our pages: JSON for API clients; a refused connect (503 with live servers) is a 502.
    // Cheapest test first: a status, a variable, then the header.
    '  http-after-response set-status 502 reason "Bad Gateway" if { status 503 } { var(txn.k) -m int 502 } { res.hdr(x-paas-page) -m found }',
    '  http-after-response set-header content-type "application/json; charset=utf-8" if { var(txn.fmt) -m str json } { res.hdr(x-paas-page) -m found }',
    // A handed-off answer is the new process's, complete (unless the hand-off failed).
    '  http-after-response allow if { var(txn.handoff) -m bool } !{ res.hdr(x-paas-page) -m found }',
    '  http-after-response del-header x-paas-page if { status ge 400 }',
    // Body bytes for the access line; a session variable, since a request haproxy could not
    // parse is logged without a transaction and a missing number would break the JSON line.
    // Zero, then the header's value if there is one (a missing sample sets nothing).
    '  http-after-response set-var(sess.clen) int(0)',
    '  http-after-response set-var(sess.clen) res.hdr(content-length)',
    '  http-after-response set-header x-request-id %[var(txn.rid)] if { var(txn.rid) -m found }',
    '  http-after-response set-header x-request-id %[uuid(4)] unless { var(txn.rid) -m found }',
    '',
    'backend handoff',
    // The new process retries a connect to the app itself; a replay from here could repeat.
    '  retry-on conn-failure',
    `  server http unix@${paths.handoff} send-proxy-v2`,
    ...(c.https === undefined
      ? []
      : [
          `  server https unix@${paths.handoffTls} send-proxy-v2`,
          '  use-server https if { ssl_fc }',
        ]),
    '  use-server http unless { ssl_fc }',
    '',
  );
  for (const b of c.backends) {
    L.push(`backend ${b.name}`);
    L.push(
      // Here, not in defaults: a hand-off must not add one the new process adds again.
      '  option forwardfor',
      ...forwardedRules(c),
      // 503 without servers, else 502 (a refused connect): 503 - (nbsrv > 0).
      '  http-request set-var(txn.k) nbsrv,bool,neg,add(503)',
      // Replaying is safe only for idempotent requests (RFC 9110 §9.2.2), as in proxy.ts.
      '  http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS || { method TRACE PUT DELETE }',
    );
    for (const s of b.slots)
      L.push(`  server s${s.n} ${s.host}:${s.port}${s.active ? '' : ' disabled'}`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

/**
 * X-Forwarded-Proto, -Host and -Port, in each app backend: after the frontend's rules (its
 * fast path ends them early; paas.lua's Connection clean-up must not strip these), and never
 * in the hand-off backend, whose new process sets them itself. The port is the listener's
 * own, as the node plane's listener.port (`%[dst_port]` costs two syscalls a connection).
 */
function forwardedRules(c: ConfigInput): string[] {
  const host = '  http-request set-header x-forwarded-host %[req.hdr(host)]';
  if (c.https === undefined)
    return [
      '  http-request set-header x-forwarded-proto http',
      host,
      `  http-request set-header x-forwarded-port ${c.httpPort}`,
    ];
  return [
    ...TLS_ACL,
    '  http-request set-header x-forwarded-proto http unless tls',
    '  http-request set-header x-forwarded-proto https if tls',
    host,
    `  http-request set-header x-forwarded-port ${c.httpPort} unless tls`,
    `  http-request set-header x-forwarded-port ${c.https.port} if tls`,
  ];
}

function logFormat(): string {
  const f = [
    '"level":30',
    '"time":%Ts%ms',
    '"source":"router"',
    '"app":"%[var(txn.app)]"',
    `"host":"%[var(txn.host),bytes(0,${LOGGED_HOST_MAX}),json(ascii)]"`,
    '"method":"%HM"',
    `"path":"%[capture.req.uri,bytes(0,${LOGGED_PATH_MAX}),json(ascii)]"`,
    '"status":%ST',
    '"bytes":%[var(sess.clen,0)]',
    '"duration":%Ta',
    '"upstream":"%si:%sp"',
    '"requestId":"%[var(txn.rid)]"',
    '"remote":"%ci"',
  ];
  return `{${f.join(',')}}`;
}

/** The host maps: exact names (custom domains, then `<app>.<domain>` over them) and wildcards. */
export function renderMaps(table: RouteTable): { exact: string; wild: string } {
  const exact = new Map<string, string>();
  const wild = new Map<string, string>();
  for (const [app, route] of Object.entries(table.apps))
    for (const d of route.domains) {
      if (d.startsWith('*.')) wild.set(d.slice(1), app);
      else exact.set(d, app);
    }
  for (const app of Object.keys(table.apps)) exact.set(`${app}.${table.domain}`, app);
  // map_end takes the first match in file order: the longest suffix first, as HostIndex does.
  const w = [...wild].sort((a, b) => b[0].length - a[0].length);
  return { exact: mapLines(exact), wild: mapLines(w) };
}

/** The app → backend map. */
export const renderBackends = (backends: Record<string, string>): string =>
  mapLines(Object.entries(backends));

/** The app → body limit map: apps whose limit is not the default. */
export const renderBodyMax = (table: RouteTable): string =>
  mapLines(
    Object.entries(table.apps)
      .filter(([, r]) => r.maxBodyBytes !== undefined && r.maxBodyBytes !== DEFAULT_MAX_BODY_BYTES)
      .map(([app, r]) => [app, String(r.maxBodyBytes)]),
  );

const mapLines = (m: Iterable<[string, string]>): string =>
  [...m].map(([k, v]) => `${k} ${v}\n`).join('');

export const LUA = `-- paas: what haproxy's configuration cannot say. Run only for requests that need it.
local platform = { paas_session = true, paas_login = true }
local keep = { [""] = true, ${[...CONNECTION_OPTIONS, ...PROTECTED].map((n) => `["${n}"] = true`).join(', ')} }

core.register_action("paas_clean", { "http-req" }, function(txn)
  local h = txn.http
  local hdrs = h:req_get_headers()
  local conn = hdrs["connection"]
  if conn then
    for _, v in pairs(conn) do
      for tok in string.gmatch(v, "[^,]+") do
        local n = string.lower((tok:gsub("^%s+", ""):gsub("%s+$", "")))
        if not keep[n] then h:req_del_header(n) end
      end
    end
  end
  local ck = hdrs["cookie"]
  if ck then
    local kept = {}
    for _, v in pairs(ck) do
      for pair in string.gmatch(v, "[^;]+") do
        local p = (pair:gsub("^%s+", ""):gsub("%s+$", ""))
        local name = (p:match("^([^=]*)") or ""):gsub("%s+$", "")
        if p ~= "" and not platform[name] then kept[#kept + 1] = p end
      end
    end
    h:req_del_header("cookie")
    if #kept > 0 then h:req_set_header("cookie", table.concat(kept, "; ")) end
  end
end)
`;

// The plain-request path: one `Exchange` per request, driving an undici dispatch straight
// into the ServerResponse. undici's low-level handler API is used instead of http-proxy
// here because it measured 1.6x the throughput on the same box (see bench/router.ts): no
// ClientRequest/IncomingMessage per upstream exchange, headers as flat arrays, body chunks
// written through with backpressure and nothing buffered.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Dispatcher } from 'undici';
import { LOGGED_PATH_MAX, type AccessLog } from './access-log.ts';
import type { Limits } from './limits.ts';
import { connectionListed, HOP_BY_HOP, requestIdFrom, withoutPlatformCookies } from './headers.ts';
import { renderError, type RouterErrorStatus } from './pages.ts';
import type { CertIndex } from './certs.ts';
import type { AppState, RouteState } from './state.ts';
import { hostOf } from './table.ts';
import type { Upstream } from './upstream.ts';

export { DEFAULT_LIMITS, type Limits } from './limits.ts';

export interface PlaneContext {
  state: RouteState;
  log: AccessLog | null;
  limits: Limits;
  /** Public HTTPS port, when there is an HTTPS listener to redirect to. */
  httpsPort: number | undefined;
  /** The certificates the HTTPS listener serves (an HTTP → HTTPS redirect waits for one). */
  certs: CertIndex;
}

/** HTTP-01 answers (RFC 8555 §8.3) come over plain HTTP: a redirect must never catch them. */
const ACME_CHALLENGE = '/.well-known/acme-challenge/';

/** RFC 6797 §6.1; one year, without includeSubDomains: other names are not ours to pin. */
const HSTS_VALUE = 'max-age=31536000';

export interface ListenerInfo {
  proto: 'http' | 'https';
  port: string;
}

// RFC 9110 §9.2.2: a request that did not reach the app may be sent again only if it is
// idempotent; with no body, nothing of it has been consumed either.
const IDEMPOTENT: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PUT',
  'DELETE',
]);
const CONNECT_FAILURES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);
/**
 * The backend took the request but died before a byte of answer (a process killed
 * mid-request, a keep-alive socket closed under us). Replaying is safe for idempotent
 * requests without a body (RFC 9110 §9.2.2), as nginx's `proxy_next_upstream error` does.
 */
const RESET_BEFORE_ANSWER: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

class BodyTooLarge extends Error {}
class BodyTimeout extends Error {}
class ClientGone extends Error {}

export function handleRequest(
  ctx: PlaneContext,
  listener: ListenerInfo,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  new Exchange(ctx, listener, req, res).start();
}

class Exchange implements Dispatcher.DispatchHandler {
  private readonly ctx: PlaneContext;
  private readonly listener: ListenerInfo;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly t0 = performance.now();
  private requestId = '';
  private host: string | null = null;
  private accept: string | undefined;
  private app: AppState | undefined;
  private upstream: Upstream | undefined;
  private headers: string[] = [];
  private hasBody = false;
  private bodyBytes = 0;
  private bytes = 0;
  /** Declared response length, when the upstream sent one: lets the last chunk end the response. */
  private expected = -1;
  private retried = false;
  /** Request target as sent upstream: origin-form, even when the client used absolute-form. */
  private path = '';
  private hostHeader: string | undefined;
  private controller: Dispatcher.DispatchController | null = null;
  private abortReason: Error | null = null;
  private bodyTimer: NodeJS.Timeout | undefined;
  private remote: string | undefined;
  constructor(
    ctx: PlaneContext,
    listener: ListenerInfo,
    req: IncomingMessage,
    res: ServerResponse,
  ) {
    this.ctx = ctx;
    this.listener = listener;
    this.req = req;
    this.res = res;
  }

  start(): void {
    const { req, res } = this;
    // Read now: by the time 'close' fires the socket may already be detached from req.
    this.remote = req.socket.remoteAddress;
    res.on('close', () => this.onClientClose());
    const raw = req.rawHeaders;
    const out = this.headers;
    let hostHeader: string | undefined;
    let hosts = 0;
    let xff: string | undefined;
    let incomingId: string | undefined;
    let connection: string | undefined;
    let contentLength: string | undefined;
    let chunked = false;
    let authority: string | undefined;
    // One pass over the raw pairs: copy what goes upstream, pick out what the router needs.
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      switch (lower) {
        case 'host':
          hosts++;
          hostHeader = value;
          out.push(name, value);
          break;
        case ':authority':
          // HTTP/2's Host (RFC 9113 §8.3.1); a Host beside it must say the same.
          authority = value;
          break;
        case 'x-request-id':
          incomingId = value;
          break;
        case 'x-forwarded-for':
          xff = xff === undefined ? value : `${xff}, ${value}`;
          break;
        case 'x-forwarded-proto':
        case 'x-forwarded-host':
        case 'x-forwarded-port':
        case 'expect':
          break;
        case 'connection':
          connection = connection === undefined ? value : `${connection}, ${value}`;
          break;
        case 'transfer-encoding':
          chunked = true;
          break;
        case 'content-length':
          contentLength = value;
          out.push(name, value);
          break;
        case 'accept':
          this.accept = value;
          out.push(name, value);
          break;
        case 'cookie': {
          // The dashboard's session is the platform's credential, never an app's to see.
          const kept = withoutPlatformCookies(value);
          if (kept !== null) out.push(name, kept);
          break;
        }
        default:
          // Other HTTP/2 pseudo-headers are the request line, already in method and url.
          if (!HOP_BY_HOP.has(lower) && lower.charCodeAt(0) !== 58 /* : */) out.push(name, value);
      }
    }
    if (authority !== undefined) {
      if (hosts === 0) {
        hosts = 1;
        hostHeader = authority;
        out.push('host', authority);
      } else if (hostHeader !== authority) hosts = 2;
    }
    this.requestId = requestIdFrom(incomingId);
    if (connection !== undefined) this.dropListed(connection);

    // RFC 9112 §3.2: exactly one Host, and a well-formed one; the router cannot route without.
    this.host = hosts === 1 && hostHeader !== undefined ? hostOf(hostHeader) : null;
    this.path = req.url!;
    if (this.host === null) return this.fail(400, true);
    if (this.path.charCodeAt(0) !== 47 /* / */ && !this.absoluteForm()) return this.fail(400, true);
    const app = (this.app = this.ctx.state.lookup(this.host));
    if (app === undefined) return this.fail(404);

    if (
      this.listener.proto === 'http' &&
      app.route.redirectHttps &&
      this.ctx.httpsPort !== undefined &&
      this.ctx.certs.covers(this.host) &&
      !this.path.startsWith(ACME_CHALLENGE)
    ) {
      return this.redirectToHttps();
    }
    this.hasBody =
      chunked ||
      (contentLength !== undefined && contentLength !== '0') ||
      // HTTP/2 frames its body without either header (RFC 9113 §8.1): a request has one
      // unless its HEADERS frame ended the stream. Sent upstream chunked.
      (req.httpVersionMajor === 2 &&
        !(req as unknown as Http2ServerRequest).stream.endAfterHeaders);
    if (contentLength !== undefined && Number(contentLength) > app.maxBodyBytes)
      return this.fail(413, true);

    const up = app.upstreams.pick();
    if (up === undefined) return this.fail(503);

    const remote = this.remote ?? '';
    out.push(
      'x-forwarded-for',
      xff === undefined ? remote : `${xff}, ${remote}`,
      'x-forwarded-proto',
      this.listener.proto,
      'x-forwarded-host',
      this.hostHeader ?? hostHeader!,
      'x-forwarded-port',
      this.listener.port,
      'x-request-id',
      this.requestId,
    );
    if (this.hasBody) this.armBodyTimer();
    this.dispatch(up);
  }

  private dispatch(up: Upstream): void {
    this.upstream = up;
    up.acquire();
    const { req } = this;
    try {
      up.pool.dispatch(
        {
          path: this.path,
          method: req.method!,
          headers: this.headers,
          body: this.hasBody ? req : null,
        },
        this,
      );
    } catch {
      // undici refuses what it cannot send (a header value it rejects): the app never saw it.
      this.releaseUpstream();
      this.fail(502);
    }
  }

  // --- undici handler -------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== null) controller.abort(this.abortReason);
  }

  onBodySent(chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    this.bodyTimer?.refresh();
    if (this.bodyBytes > this.app!.maxBodyBytes) this.abort(new BodyTooLarge());
  }

  onRequestSent(): void {
    this.clearBodyTimer();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx interim responses are the upstream hop's business.
    const out: string[] = [];
    let hasId = false;
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined || HOP_BY_HOP.has(name)) continue;
      if (name === 'x-request-id') hasId = true;
      else if (name === 'content-length' && typeof v === 'string') this.expected = Number(v);
      if (typeof v === 'string') out.push(name, v);
      else for (const one of v) out.push(name, one);
    }
    if (!hasId) out.push('x-request-id', this.requestId);
    if (this.app!.route.hsts && this.listener.proto === 'https')
      out.push('strict-transport-security', HSTS_VALUE);
    try {
      // HTTP/2 has no reason phrase (RFC 9113 §8.3.2).
      const h2 = this.req.httpVersionMajor === 2;
      this.res.writeHead(statusCode, h2 ? undefined : statusMessage || undefined, out);
    } catch {
      // A header Node will not send (invalid characters): the response cannot be relayed.
      controller.abort(new Error('invalid upstream response header'));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    // The chunk that completes a declared length ends the response in the same write: one
    // syscall with the head for small responses, and no cork/uncork tick (measured).
    if (this.bytes === this.expected) {
      this.res.end(chunk);
      return;
    }
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.releaseUpstream();
    if (!this.res.writableEnded) this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const failed = this.upstream;
    this.releaseUpstream();
    this.clearBodyTimer();
    if (err instanceof ClientGone) return;
    if (this.res.headersSent) {
      // Mid-response: the only honest signal left is a cut connection.
      this.res.destroy();
      return;
    }
    if (err instanceof BodyTooLarge) return this.fail(413, true);
    if (err instanceof BodyTimeout) return this.fail(408, true);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return this.fail(504);
    if (
      !this.retried &&
      (CONNECT_FAILURES.has(code) || RESET_BEFORE_ANSWER.has(code)) &&
      !this.hasBody &&
      IDEMPOTENT.has(this.req.method!)
    ) {
      const next = this.app!.upstreams.pick(failed);
      if (next !== undefined) {
        this.retried = true;
        this.controller = null;
        return this.dispatch(next);
      }
    }
    this.fail(502);
  }

  // --- helpers ----------------------------------------------------------------------------

  private abort(reason: Error): void {
    if (this.abortReason !== null) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  private releaseUpstream(): void {
    const u = this.upstream;
    if (u !== undefined) {
      this.upstream = undefined;
      u.release();
      this.lastUpstream = u.key;
    }
  }

  private lastUpstream: string | null = null;

  private armBodyTimer(): void {
    this.bodyTimer = setTimeout(() => this.abort(new BodyTimeout()), this.ctx.limits.bodyTimeoutMs);
    this.req.once('end', () => this.clearBodyTimer());
  }

  private clearBodyTimer(): void {
    if (this.bodyTimer !== undefined) {
      clearTimeout(this.bodyTimer);
      this.bodyTimer = undefined;
    }
  }

  /**
   * RFC 9112 §3.2.2: a request in absolute-form (`GET http://host/path`) is routed by the
   * authority in its target, not its Host header, and goes upstream in origin-form with that
   * authority as Host. Anything else that is not origin-form (`*`, authority-form) is refused.
   */
  private absoluteForm(): boolean {
    let url: URL;
    try {
      url = new URL(this.path);
    } catch {
      return false;
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password)
      return false;
    this.host = hostOf(url.host);
    this.hostHeader = url.host;
    this.path = url.pathname + url.search;
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i]!.toLowerCase() === 'host') h[i + 1] = url.host;
    return true;
  }

  private dropListed(connection: string): void {
    const listed = connectionListed(connection);
    if (listed === null) return;
    const kept: string[] = [];
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2)
      if (!listed.has(h[i]!.toLowerCase())) kept.push(h[i]!, h[i + 1]!);
    this.headers = kept;
  }

  private fail(status: RouterErrorStatus, close = false): void {
    const { res } = this;
    if (res.headersSent || res.destroyed) return;
    const page = renderError(status, this.requestId, this.host ?? undefined, this.accept);
    this.bytes = page.body.length;
    // After a refused body (413, 408) or a request we could not parse (400) the rest of the
    // connection's bytes cannot be trusted to be a next request: close it.
    const headers: string[] = [
      'content-type',
      page.contentType,
      'content-length',
      String(page.body.length),
      'cache-control',
      'no-store',
      'x-request-id',
      this.requestId,
    ];
    // HTTP/2 forbids connection-specific fields (RFC 9113 §8.2.2); its stream just ends.
    if (close && this.req.httpVersionMajor !== 2) headers.push('connection', 'close');
    res.writeHead(status, headers);
    res.end(page.body);
  }

  private redirectToHttps(): void {
    const port = this.ctx.httpsPort === 443 ? '' : `:${this.ctx.httpsPort}`;
    // 308 keeps the method and body (RFC 9110 §15.4.9), unlike 301.
    this.res.writeHead(308, [
      'location',
      `https://${this.host}${port}${this.path}`,
      'content-length',
      '0',
      'x-request-id',
      this.requestId,
    ]);
    this.res.end();
  }

  private onClientClose(): void {
    this.clearBodyTimer();
    const { res } = this;
    if (!res.writableFinished) this.abort(new ClientGone());
    const log = this.ctx.log;
    if (log === null) return;
    log.write({
      app: this.app?.name ?? null,
      host: this.host,
      method: this.req.method!,
      path: this.req.url!.slice(0, LOGGED_PATH_MAX),
      // 499: nginx's "client closed the request before the response was sent".
      status: res.headersSent ? res.statusCode : 499,
      bytes: this.bytes,
      duration: Math.round((performance.now() - this.t0) * 1000) / 1000,
      upstream: this.upstream?.key ?? this.lastUpstream,
      requestId: this.requestId,
      remote: this.remote,
    });
  }
}

// The upgrade path (WebSocket): http-proxy does what it is best at here, the 101 handshake
// and piping two sockets both ways. Each upgraded connection counts against its upstream
// until the client side closes, so a switch's drain waits for it.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import { connectionListed, requestIdFrom, withoutPlatformCookies } from './headers.ts';
import { reasonPhrase, renderError, type RouterErrorStatus } from './pages.ts';
import type { ListenerInfo, PlaneContext } from './proxy.ts';
import { hostOf } from './table.ts';

const proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, proxyTimeout: 0 });
// Errors are answered per call below; this keeps an unexpected one from being an
// unhandled 'error' event that would take the worker down.
proxy.on('error', () => {});

export function handleUpgrade(
  ctx: PlaneContext,
  listener: ListenerInfo,
  req: IncomingMessage,
  duplex: Duplex,
  head: Buffer,
): void {
  const socket = duplex as Socket;
  const t0 = performance.now();
  const h = req.headers;
  const requestId = requestIdFrom(
    typeof h['x-request-id'] === 'string' ? h['x-request-id'] : undefined,
  );
  const host = typeof h.host === 'string' ? hostOf(h.host) : null;
  const app = host === null ? undefined : ctx.state.lookup(host);
  let upstreamKey: string | null = null;
  let status = 101;
  const remote = socket.remoteAddress;
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    ctx.log?.write({
      app: app?.name ?? null,
      host,
      method: req.method!,
      path: req.url!,
      status,
      bytes: socket.bytesWritten ?? 0,
      duration: Math.round((performance.now() - t0) * 1000) / 1000,
      upstream: upstreamKey,
      requestId,
      remote,
    });
  });

  const reject = (s: RouterErrorStatus): void => {
    status = s;
    const page = renderError(s, requestId, host ?? undefined, h.accept);
    socket.write(
      `HTTP/1.1 ${s} ${reasonPhrase(s)}\r\ncontent-type: ${page.contentType}\r\ncontent-length: ${page.body.length}\r\n` +
        `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n`,
    );
    socket.end(page.body);
  };

  if (host === null) return reject(400);
  if (app === undefined) return reject(404);
  const up = app.upstreams.pick();
  if (up === undefined) return reject(503);

  // Same forwarding headers as the plain path; Connection/Upgrade stay, they are the point.
  const conn = typeof h.connection === 'string' ? connectionListed(h.connection) : null;
  if (conn !== null) for (const n of conn) delete h[n];
  for (const n of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding'])
    delete h[n];
  // As on the plain path: the dashboard's session never reaches an app (Node joins several
  // Cookie lines into one with "; ").
  if (typeof h.cookie === 'string') {
    const kept = withoutPlatformCookies(h.cookie);
    if (kept === null) delete h.cookie;
    else h.cookie = kept;
  }
  const xff = h['x-forwarded-for'];
  h['x-forwarded-for'] = xff
    ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${remote ?? ''}`
    : (remote ?? '');
  h['x-forwarded-proto'] = listener.proto;
  h['x-forwarded-host'] = h.host;
  h['x-forwarded-port'] = listener.port;
  h['x-request-id'] = requestId;

  upstreamKey = up.key;
  up.acquire();
  up.upgraded++;
  socket.once('close', () => {
    up.upgraded--;
    up.release();
  });
  proxy.ws(
    req,
    socket,
    head,
    { target: { host: up.backend.host, port: up.backend.port } },
    (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (socket.writable && socket.bytesWritten === 0) reject(code === 'ETIMEDOUT' ? 504 : 502);
      else socket.destroy();
    },
  );
}

// The API port's HTTP server: one listener for git, the registry, the API and the dashboard,
// held to the router's limits (src/router/limits.ts) since it faces clients just as much.
// A request head must arrive within headersTimeout (a slowloris is cut), but a request as a
// whole has no deadline: a push of a long build, a big blob upload, `paas logs -t`, the
// dashboard's tail and `paas run` last as long as they need. Instead a request body may not
// fall silent for longer than bodyTimeout, except where silence is the point (`paas run`'s
// stdin, released with `keepBodyOpen` once the request is authenticated).
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { DEFAULT_LIMITS, listenerOptions, type Limits } from '../router/index.ts';

// node:http through require, not `import`: Node's ESM view of node:http reads every export,
// and three (WebSocket, CloseEvent, MessageEvent) load Node's bundled undici, ~10 MB resident
// that the daemon never uses (README: Footprint; test/lazy-imports.test.ts).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof Http;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Requests whose body may stay silent (their handler vouched for them). */
const openBodies = new WeakSet<IncomingMessage>();

/** Lifts the body-silence limit from an authenticated request whose body is a live stream. */
export function keepBodyOpen(req: IncomingMessage): void {
  openBodies.add(req);
}

// How often a body's progress is looked at: the cut comes within a second of the limit.
const CHECK_MS = 1000;

/**
 * Cuts a request whose body stops arriving. Progress is read off the socket's byte count
 * rather than the body stream, so the handler stays the only reader of the body.
 */
function watchBody(req: IncomingMessage, res: ServerResponse, limitMs: number): void {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  if (!hasBody || limitMs <= 0) return;
  const socket = req.socket;
  let seen = socket.bytesRead;
  let lastProgress = performance.now();
  const tick = (): void => {
    if (req.complete || req.destroyed || socket.destroyed || openBodies.has(req)) return;
    const now = performance.now();
    if (socket.bytesRead !== seen) {
      seen = socket.bytesRead;
      lastProgress = now;
    } else if (now - lastProgress >= limitMs) {
      if (!res.headersSent) {
        res.writeHead(408, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end('the request body stopped arriving\n', () => socket.destroy());
      } else socket.destroy();
      return;
    }
    setTimeout(tick, Math.min(CHECK_MS, limitMs)).unref();
  };
  setTimeout(tick, Math.min(CHECK_MS, limitMs)).unref();
}

export interface PortHandlers {
  git: { matches: (url: string) => boolean; handle: Handler };
  registry: Handler;
  api: Handler;
  dashboard: Handler;
}

/** The port's request dispatch, shared by the plain and the TLS listener (tls.ts). */
export function portHandler(h: PortHandlers, limits: Limits = DEFAULT_LIMITS): Handler {
  return (req, res) => {
    watchBody(req, res, limits.bodyTimeoutMs);
    const url = req.url ?? '/';
    if (h.git.matches(url)) return h.git.handle(req, res);
    if (url === '/v2' || url.startsWith('/v2/')) return h.registry(req, res);
    if (url === '/api' || url.startsWith('/api/') || url.startsWith('/api?'))
      return h.api(req, res);
    h.dashboard(req, res);
  };
}

export function createPortServer(h: PortHandlers, limits: Limits = DEFAULT_LIMITS): Server {
  const server = createServer(listenerOptions(limits), portHandler(h, limits));
  // No inactivity cut-off on a socket as such: a push's response is silent while a build step
  // runs, and a log follow while the app says nothing. Heads and bodies are bounded above.
  server.timeout = 0;
  return server;
}

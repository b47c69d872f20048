// HTTPS on the API port (issue 19): the API, git smart HTTP, the registry and the dashboard
// over TLS, with plain HTTP still answered from loopback only.
//
// Both arrive on the one port, told apart by their first byte: a TLS connection opens with a
// handshake record (content type 22, RFC 8446 §5.1), an HTTP/1 request with a method name in
// ASCII. One port rather than a second loopback listener because a socket on 0.0.0.0:7070
// and one on 127.0.0.1:7070 cannot both be bound, and a different loopback port would change
// every URL local tools, setup.sh and existing git remotes already use
// (http://127.0.0.1:7070). The first chunk is put back (`unshift`) and the socket handed to
// Node's own HTTP or HTTPS server, so parsing, limits and keep-alive are theirs.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { InvalidArgument } from '../errors/index.ts';
import { DEFAULT_LIMITS, listenerOptions, type Limits } from '../router/index.ts';

// node:http through require, not `import`: Node's ESM view of node:http reads every export,
// and three (WebSocket, CloseEvent, MessageEvent) load Node's bundled undici, ~10 MB resident
// that the daemon never uses (README: Footprint; test/lazy-imports.test.ts).
const { createServer: createHttpServer } = createRequire(import.meta.url)(
  'node:http',
) as typeof Http;

export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6 (a dual-stack socket's view of 127.0.0.1). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(a);
}

/** The certificate and key, read once at start; a missing or unreadable file is the flag's error. */
function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new InvalidArgument(`daemon: ${flag} ${path}: ${(e as Error).message}`, { path });
  }
}

const TLS_HANDSHAKE = 22;

const REFUSED =
  'HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n\r\n' +
  'paas: plain HTTP is accepted from loopback only; this port speaks HTTPS (https://…)\n';

export type PortServer = NetServer & { closeAllConnections(): void };

/**
 * The API port with TLS: HTTPS for everyone, plain HTTP for loopback clients, and a 403 (then
 * close) for plain HTTP from anywhere else, reported through `onPlainRefused`.
 */
export function createTlsPortServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  files: TlsFiles,
  onPlainRefused: (remote: string | null) => void,
  limits: Limits = DEFAULT_LIMITS,
): PortServer {
  const cert = readPem(files.certPath, '--tls-cert');
  const key = readPem(files.keyPath, '--tls-key');
  const plain = createHttpServer(listenerOptions(limits), handler);
  // Any TLS parameter error (a key that does not match the certificate) fails the start here.
  let secure;
  try {
    secure = createHttpsServer({ ...listenerOptions(limits), cert, key }, handler);
  } catch (e) {
    throw new InvalidArgument(`daemon: --tls-cert/--tls-key: ${(e as Error).message}`);
  }
  for (const s of [plain, secure]) s.timeout = 0;
  const sockets = new Set<Socket>();
  const outer = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // Until its first byte the connection belongs to no server, so bound the wait here as
    // the HTTP servers bound a request head.
    socket.setTimeout(limits.headersTimeoutMs, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE) secure.emit('connection', socket);
      else if (isLoopback(socket.remoteAddress)) plain.emit('connection', socket);
      else {
        // Whatever the client sent (perhaps a token in clear) is not read, and no answer
        // depends on it: one fixed refusal, then the connection ends.
        onPlainRefused(socket.remoteAddress ?? null);
        socket.end(REFUSED);
        return;
      }
      process.nextTick(() => socket.resume());
    });
  });
  // Node arms a server's head-timeout checks (headersTimeout, connectionsCheckingInterval)
  // when it starts listening; these two never listen themselves, so arm them with the outer one.
  outer.once('listening', () => {
    plain.emit('listening');
    secure.emit('listening');
  });
  outer.once('close', () => {
    plain.close();
    secure.close();
  });
  return Object.assign(outer, {
    closeAllConnections(): void {
      for (const s of sockets) s.destroy();
    },
  });
}

// A worker plane (one process of the node data plane): the HTTP (and optional HTTPS)
// listeners of one process, its live route table and its access log. The router runs one
// per worker; tests may run one in-process.
import http from 'node:http';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { AccessLog } from './access-log.ts';
import {
  CertIndex,
  contextOptions,
  NO_CERTS,
  TLS_CIPHERS,
  TLS_MIN_VERSION,
  type RouterCerts,
} from './certs.ts';
import { answerChallenge } from './challenge.ts';
import { requestIdFrom } from './headers.ts';
import { loadPages, reasonPhrase, renderError, type RouterErrorStatus } from './pages.ts';
import { listenerOptions } from './limits.ts';
import { handleRequest, type Limits, type ListenerInfo, type PlaneContext } from './proxy.ts';
import { RouteState, type StateStats } from './state.ts';
import type { RouteTable } from './table.ts';
import { handleUpgrade } from './upgrade.ts';

/** How long a closing plane leaves an idle kept-alive connection for its client's next request. */
const IDLE_GRACE_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export interface PlaneOptions {
  host: string;
  httpPort: number;
  httpsPort?: number;
  limits: Limits;
  accessLogPath: string | null;
  /** Join a port other processes listen on too (SO_REUSEPORT): the kernel spreads connections. */
  reusePort: boolean;
}

export class WorkerPlane {
  readonly state: RouteState;
  private readonly ctx: PlaneContext;
  private readonly servers: (http.Server | http2.Http2SecureServer)[] = [];
  private readonly log: AccessLog | null;
  private tlsServer: http2.Http2SecureServer | null = null;
  /** The HTTPS listener's connections: Http2SecureServer has no closeAllConnections. */
  private readonly tlsSockets = new Set<tls.TLSSocket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly opts: PlaneOptions;
  /** ACME HTTP-01 token → key authorization (challenge.ts), replaced whole on each push. */
  private challenges: ReadonlyMap<string, string> = new Map();
  httpPort = 0;
  httpsPort: number | undefined;
  /** Closing: each HTTP/1 response ends its connection (`Connection: close`). */
  private closing = false;
  /** HTTP/1 connections (plain and over TLS): requests in flight, and when last active. */
  private readonly h1 = new Map<Socket, { busy: number; at: number }>();

  private constructor(opts: PlaneOptions) {
    this.opts = opts;
    this.state = new RouteState(opts.limits);
    this.log = opts.accessLogPath === null ? null : new AccessLog(opts.accessLogPath);
    this.ctx = {
      state: this.state,
      log: this.log,
      limits: opts.limits,
      httpsPort: undefined,
      certs: new CertIndex(NO_CERTS),
    };
  }

  static async start(opts: PlaneOptions): Promise<WorkerPlane> {
    loadPages(); // the first error page is as fast as the next
    const p = new WorkerPlane(opts);
    try {
      p.httpPort = await p.listen('http', opts.httpPort);
      if (opts.httpsPort !== undefined)
        p.httpsPort = p.ctx.httpsPort = await p.listen('https', opts.httpsPort);
    } catch (err) {
      await p.close(0);
      throw err;
    }
    return p;
  }

  apply(table: RouteTable, drainTimeoutMs = this.opts.limits.drainTimeoutMs): Promise<boolean> {
    return this.state.apply(table, drainTimeoutMs);
  }

  /**
   * Serve `certs` from the next handshake on. Compiled aside first (a PEM OpenSSL refuses
   * throws here and the set in service stays); connections already up keep theirs.
   */
  setCerts(certs: RouterCerts): void {
    const index = new CertIndex(certs);
    // Clients without SNI (an IP address) get the server's own context: the default, or a
    // context without a certificate, whose handshake fails.
    this.tlsServer?.setSecureContext(
      certs.default
        ? contextOptions(certs.default)
        : { minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS },
    );
    this.ctx.certs = index;
  }

  setChallenges(challenges: ReadonlyMap<string, string>): void {
    this.challenges = challenges;
  }

  stats(): StateStats {
    return this.state.stats();
  }

  reopenLogs(): void {
    this.log?.reopen();
  }

  async close(drainTimeoutMs: number): Promise<void> {
    this.closing = true;
    // Stop accepting, without http.Server.close's closing of idle kept-alive connections
    // right away: a client may be sending on one. Those in use get `Connection: close` with
    // their next answer; one idle for a grace (no request in flight, none begun) is closed.
    const closed = Promise.all(
      this.servers.map(
        (s) => new Promise<void>((r) => net.Server.prototype.close.call(s, () => r())),
      ),
    );
    // HTTP/2: GOAWAY, then each session ends once its open streams have.
    for (const session of this.sessions) session.close();
    const deadline = Date.now() + drainTimeoutMs;
    const now = Date.now();
    for (const c of this.h1.values()) c.at = Math.max(c.at, now);
    while (this.h1.size > 0 && Date.now() < deadline) {
      for (const [socket, c] of this.h1) {
        if (c.busy === 0 && Date.now() - c.at >= IDLE_GRACE_MS) socket.destroy();
        // Its 'close' may not come (seen with Node's HTTP/1 server): destroyed is gone.
        if (socket.destroyed) this.h1.delete(socket);
      }
      await Promise.race([closed, sleep(50)]);
    }
    await this.state.close(Math.max(0, deadline - Date.now()));
    for (const s of this.servers) if (s instanceof http.Server) s.closeAllConnections();
    for (const socket of this.tlsSockets) socket.destroy();
    await closed;
    await this.log?.close();
  }

  private listen(proto: 'http' | 'https', port: number): Promise<number> {
    const { limits } = this.opts;
    const common: http.ServerOptions = {
      ...listenerOptions(limits),
      // The router answers a missing Host itself, with its error page and request id.
      requireHostHeader: false,
    };
    const info: ListenerInfo = { proto, port: String(port) };
    let server: http.Server | http2.Http2SecureServer;
    if (proto === 'http') {
      server = http.createServer(common);
      server.on('connection', (socket: Socket) => this.trackH1(socket));
    } else {
      // ALPN offers h2 and http/1.1; an HTTP/1.1 connection (and its upgrades) is served by
      // Node's HTTP/1 parser with the same limits as the plain port.
      server = this.tlsServer = http2.createSecureServer({
        ...common,
        allowHTTP1: true,
        minVersion: TLS_MIN_VERSION,
        ciphers: TLS_CIPHERS,
        honorCipherOrder: true,
        SNICallback: (name, cb) => this.sni(name, cb),
      });
      server.on('tlsClientError', () => {});
      // A client that opens h2 streams and never reads must not keep its session forever.
      server.on('session', (s) => {
        this.sessions.add(s);
        s.on('close', () => this.sessions.delete(s));
        s.on('error', () => s.destroy());
      });
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        this.tlsSockets.add(socket);
        socket.on('close', () => this.tlsSockets.delete(socket));
        // HTTP/2 sessions end by GOAWAY at close; HTTP/1 ones are tracked as on the plain port.
        if (socket.alpnProtocol !== 'h2') this.trackH1(socket);
      });
    }
    server.on('request', (req, res) => {
      // A client on a kept-alive connection is told to go elsewhere with its answer, rather
      // than finding the connection closed under the request it is sending.
      if ((req as http.IncomingMessage).httpVersionMajor === 1) {
        const c = this.h1.get(req.socket as Socket);
        if (c !== undefined) {
          c.busy++;
          c.at = Date.now();
          res.once('close', () => {
            c.busy--;
            c.at = Date.now();
          });
        }
        if (this.closing) res.setHeader('connection', 'close');
      }
      // ACME HTTP-01 (challenge.ts): the plain port answers pushed tokens before routing.
      if (
        proto === 'http' &&
        answerChallenge(this.challenges, req as http.IncomingMessage, res as http.ServerResponse)
      )
        return;
      handleRequest(this.ctx, info, req as http.IncomingMessage, res as http.ServerResponse);
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      // An upgraded connection is no longer HTTP/1's: the drain waits for it (state.ts).
      this.h1.delete(socket);
      handleUpgrade(this.ctx, info, req, socket, head);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      this.onClientError(err, socket),
    );
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(
        { port, host: this.opts.host, reusePort: this.opts.reusePort, exclusive: true },
        () => {
          server.off('error', reject);
          const bound = (server.address() as { port: number }).port;
          info.port = String(bound);
          resolve(bound);
        },
      );
    });
  }

  private trackH1(socket: Socket): void {
    this.h1.set(socket, { busy: 0, at: Date.now() });
    socket.once('close', () => this.h1.delete(socket));
  }

  /**
   * A request Node's parser rejected, or whose head did not arrive in time: answer with the
   * status the parser's error stands for, then close. Never throws: the process outlives
   * any input (issue 5: "a malformed request never crashes the process").
   */
  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? '';
    const status: RouterErrorStatus =
      code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    // Nothing to say on a dead socket, nor in the middle of a response already under way.
    if (code === 'ECONNRESET' || !socket.writable || socketBusy(socket)) {
      socket.destroy();
      return;
    }
    const requestId = requestIdFrom(undefined);
    const page = renderError(status, requestId, undefined, undefined);
    socket.end(
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: ${page.contentType}\r\n` +
            `content-length: ${page.body.length}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`,
        ),
        page.body,
      ]),
    );
    // A client that does not read its error must not keep the socket.
    setTimeout(() => socket.destroy(), 2000).unref();
    this.log?.write({
      app: null,
      host: null,
      method: '-',
      path: '-',
      status,
      bytes: page.body.length,
      duration: 0,
      upstream: null,
      requestId,
      remote: socket.remoteAddress,
    });
  }

  /**
   * SNI: the host's certificate, else the operator's default, else a context without any
   * certificate, so OpenSSL ends the handshake with an alert (handshake_failure) instead of
   * a bare connection reset, and no other host's certificate is ever shown.
   */
  private sni(name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    cb(null, this.ctx.certs.select(name) ?? NO_CERT_CONTEXT);
  }
}

const NO_CERT_CONTEXT = tls.createSecureContext({
  minVersion: TLS_MIN_VERSION,
  ciphers: TLS_CIPHERS,
});

/** Whether this connection has a response in progress (a pipelined request's). */
function socketBusy(socket: Socket): boolean {
  // Node's own field; its default clientError handler makes the same check.
  return (socket as Socket & { _httpMessage?: unknown })._httpMessage != null;
}

// A worker plane (one process of the node data plane): the HTTP (and optional HTTPS)
// listeners of one process, its live route table and its access log. The router runs one
// per worker; tests may run one in-process.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { AccessLog } from './access-log.ts';
import { requestIdFrom } from './headers.ts';
import { reasonPhrase, renderError, type RouterErrorStatus } from './pages.ts';
import { listenerOptions } from './limits.ts';
import { handleRequest, type Limits, type ListenerInfo, type PlaneContext } from './proxy.ts';
import { RouteState, type StateStats } from './state.ts';
import { isHostname } from '../apps/validate.ts';
import type { RouteTable } from './table.ts';
import { handleUpgrade } from './upgrade.ts';

export interface PlaneOptions {
  host: string;
  httpPort: number;
  httpsPort?: number;
  /** `<dataDir>/router/certs`: `<host>.crt` + `<host>.key`, or `*.<parent>.crt/.key`. */
  certDir: string;
  limits: Limits;
  accessLogPath: string | null;
  /** Join a port other processes listen on too (SO_REUSEPORT): the kernel spreads connections. */
  reusePort: boolean;
}

export class WorkerPlane {
  readonly state: RouteState;
  private readonly ctx: PlaneContext;
  private readonly servers: http.Server[] = [];
  private readonly log: AccessLog | null;
  private readonly certs = new Map<string, tls.SecureContext | null>();
  private readonly opts: PlaneOptions;
  httpPort = 0;
  httpsPort: number | undefined;

  private constructor(opts: PlaneOptions) {
    this.opts = opts;
    this.state = new RouteState(opts.limits);
    this.log = opts.accessLogPath === null ? null : new AccessLog(opts.accessLogPath);
    this.ctx = { state: this.state, log: this.log, limits: opts.limits, httpsPort: undefined };
  }

  static async start(opts: PlaneOptions): Promise<WorkerPlane> {
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
    this.certs.clear(); // certificates may have been added for new domains
    return this.state.apply(table, drainTimeoutMs);
  }

  stats(): StateStats {
    return this.state.stats();
  }

  reopenLogs(): void {
    this.log?.reopen();
  }

  async close(drainTimeoutMs: number): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.close(() => r());
            s.closeIdleConnections();
          }),
      ),
    );
    await this.state.close(drainTimeoutMs);
    for (const s of this.servers) s.closeAllConnections();
    await this.log?.close();
  }

  private listen(proto: 'http' | 'https', port: number): Promise<number> {
    const { limits } = this.opts;
    const common: http.ServerOptions = {
      ...listenerOptions(limits),
      // The router answers a missing Host itself, with its error page and request id.
      requireHostHeader: false,
    };
    const server =
      proto === 'http'
        ? http.createServer(common)
        : https.createServer({ ...common, SNICallback: (name, cb) => this.sni(name, cb) });
    const info: ListenerInfo = { proto, port: String(port) };
    server.on('request', (req, res) => handleRequest(this.ctx, info, req, res));
    server.on('upgrade', (req, socket, head) => handleUpgrade(this.ctx, info, req, socket, head));
    server.on('clientError', (err, socket) => this.onClientError(err, socket as Socket));
    if (proto === 'https') server.on('tlsClientError', () => {});
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

  private sni(name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const host = name.toLowerCase();
    let ctx = this.certs.get(host);
    if (ctx === undefined) {
      const dot = host.indexOf('.');
      ctx = this.loadCert(host) ?? (dot > 0 ? this.loadCert(`*${host.slice(dot)}`) : null);
      this.certs.set(host, ctx);
    }
    if (ctx === null) cb(new Error(`no certificate for ${host}`));
    else cb(null, ctx);
  }

  private loadCert(name: string): tls.SecureContext | null {
    if (!isHostname(name.startsWith('*.') ? name.slice(2) : name)) return null;
    try {
      return tls.createSecureContext({
        cert: readFileSync(join(this.opts.certDir, `${name}.crt`)),
        key: readFileSync(join(this.opts.certDir, `${name}.key`)),
      });
    } catch {
      return null;
    }
  }
}

/** Whether this connection has a response in progress (a pipelined request's). */
function socketBusy(socket: Socket): boolean {
  // Node's own field; its default clientError handler makes the same check.
  return (socket as Socket & { _httpMessage?: unknown })._httpMessage != null;
}

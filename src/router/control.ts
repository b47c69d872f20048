// The control socket (<dataDir>/router.sock): newline-delimited JSON requests and replies,
// matched by id, so one connection can carry a slow `switch` and a `ping` at once. The
// socket file is 0600: whoever can write to it can re-point every app.
import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { KINDS, PaasError, RouterUnavailable, type ErrorKind } from '../errors/index.ts';

export interface ControlRequest {
  id: number;
  op: string;
  args?: unknown;
}

export type ControlReply =
  | { id: number; ok: true; result: unknown }
  | {
      id: number;
      ok: false;
      error: { code: string; kind: string; message: string; details?: unknown };
    };

export type ControlHandler = (op: string, args: unknown) => Promise<unknown>;

/** Listen on `path`, refusing to steal it from a live router; removes a stale socket file. */
export async function listenControl(path: string, handler: ControlHandler): Promise<net.Server> {
  if (await answers(path)) {
    throw new RouterUnavailable(`a router is already listening on ${path}`, { path });
  }
  try {
    unlinkSync(path);
  } catch {
    // No stale socket.
  }
  const server = net.createServer((conn) => serve(conn, handler));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}

function serve(conn: net.Socket, handler: ControlHandler): void {
  conn.on('error', () => conn.destroy());
  const lines = createInterface({ input: conn, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
      if (typeof req.id !== 'number' || typeof req.op !== 'string') throw new Error('bad request');
    } catch {
      conn.destroy();
      return;
    }
    handler(req.op, req.args).then(
      (result) => reply(conn, { id: req.id, ok: true, result }),
      (err: unknown) => {
        const e =
          err instanceof PaasError
            ? { code: err.code, kind: err.kind, message: err.message, details: err.details }
            : {
                code: 'Internal',
                kind: 'internal',
                message: err instanceof Error ? err.message : String(err),
              };
        reply(conn, { id: req.id, ok: false, error: e });
      },
    );
  });
}

function reply(conn: net.Socket, r: ControlReply): void {
  if (conn.writable) conn.write(`${JSON.stringify(r)}\n`);
}

/** Whether something accepts connections on the unix socket at `path`. */
export function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const t = setTimeout(() => done(false), timeoutMs);
    function done(ok: boolean): void {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    }
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Client side of the protocol: one connection, many concurrent requests. */
export class ControlConnection {
  private readonly sock: net.Socket;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    const lines = createInterface({ input: sock, crlfDelay: Infinity });
    lines.on('line', (line) => {
      let r: ControlReply;
      try {
        r = JSON.parse(line) as ControlReply;
      } catch {
        return;
      }
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.result);
      else {
        // The router's typed error, rebuilt on this side so the daemon maps it like its own.
        const kind: ErrorKind = r.error.kind in KINDS ? (r.error.kind as ErrorKind) : 'internal';
        p.reject(
          new PaasError(
            r.error.code,
            kind,
            r.error.message,
            (r.error.details ?? {}) as Record<string, unknown>,
          ),
        );
      }
    });
    const fail = (): void => {
      this.closed = true;
      for (const p of this.pending.values())
        p.reject(new RouterUnavailable('router control connection closed'));
      this.pending.clear();
    };
    sock.on('close', fail);
    sock.on('error', () => sock.destroy());
  }

  static open(path: string, timeoutMs = 2000): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(new RouterUnavailable(`router on ${path} did not answer`, { path }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(new ControlConnection(s));
      });
      s.once('error', (err) => {
        clearTimeout(t);
        reject(
          new RouterUnavailable(
            `router on ${path} is not running: ${err.message}`,
            { path },
            { cause: err },
          ),
        );
      });
    });
  }

  call(op: string, args?: unknown): Promise<unknown> {
    if (this.closed)
      return Promise.reject(new RouterUnavailable('router control connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(`${JSON.stringify({ id, op, args } satisfies ControlRequest)}\n`);
    });
  }

  close(): void {
    this.sock.end();
  }
}

// Test fixtures for the router's tests: real upstream servers on loopback ephemeral ports,
// a data plane on an ephemeral port with its own data dir, and a plain request helper.
// The contract suite (routing/streaming/switch/guard tests) runs on the plane named by
// PAAS_ROUTER_PLANE (node by default); vitest.config.ts runs it once per plane.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePlaneKind, type DataPlane, type PlaneKind } from './data-plane.ts';
import { HaproxyPlane } from './haproxy/plane.ts';
import { NodePlane } from './node-plane.ts';
import { startRouter, type RouterOptions } from './router.ts';

/** The plane this run of the contract suite is about. */
export const PLANE: PlaneKind = parsePlaneKind(process.env.PAAS_ROUTER_PLANE ?? 'node');

/**
 * A contract case this plane cannot meet yet: skipped on it, with the reason in the test's
 * name, so the gap shows in every run instead of a weaker assertion.
 */
export function gap(plane: PlaneKind, reason: string): { skip: boolean; why: string } {
  return PLANE === plane
    ? { skip: true, why: ` [${plane} gap: ${reason}]` }
    : { skip: false, why: '' };
}

export interface Upstream {
  port: number;
  name: string;
  /** Every request this upstream saw, with the time it arrived. */
  seen: { at: number; method: string; url: string; headers: http.IncomingHttpHeaders }[];
  server: http.Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  name: string,
) => void;

const hello: UpstreamHandler = (req, res, name) => {
  const body = JSON.stringify({ name, url: req.url, headers: req.headers });
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
};

export async function upstream(name: string, handler: UpstreamHandler = hello): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ at: performance.now(), method: req.method!, url: req.url!, headers: req.headers });
    handler(req, res, name);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    name,
    seen,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

export interface TestRouter {
  handle: { httpPort: number; httpsPort: number | undefined };
  client: DataPlane;
  dataDir: string;
  port: number;
  close(): Promise<void>;
}

/** A data plane of kind PLANE: node in this process (one worker), haproxy detached. */
export async function testRouter(opts: Partial<RouterOptions> = {}): Promise<TestRouter> {
  const dataDir = mkdtempSync(join(tmpdir(), 'paas-router-test-'));
  const cfg = {
    dataDir,
    httpPort: 0,
    host: '127.0.0.1',
    domain: 'paas.test',
    workers: 1,
    ...opts,
  };
  try {
    if (PLANE === 'haproxy') {
      const plane = new HaproxyPlane(cfg);
      await plane.connect();
      const health = await plane.health();
      return {
        handle: { httpPort: health.httpPort, httpsPort: health.httpsPort },
        client: plane,
        dataDir,
        port: health.httpPort,
        async close() {
          await plane.stop();
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    }
    const handle = await startRouter(cfg);
    const client = new NodePlane({ ...cfg, httpPort: handle.httpPort });
    await client.connect();
    return {
      handle,
      client,
      dataDir,
      port: handle.httpPort,
      async close() {
        client.close();
        await handle.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Whether it went on a kept-alive connection the agent already had. */
  reused: boolean;
}

export function request(
  port: number,
  host: string | null,
  opts: {
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    /** Kept-alive connections to reuse (default: a connection of its own). */
    agent?: http.Agent;
    /** HTTPS with this SNI name (any certificate accepted). */
    servername?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (host !== null) headers.host = host;
    const tls = opts.servername === undefined ? {} : { servername: opts.servername };
    const req = (opts.servername === undefined ? http : https).request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers,
        agent: opts.agent ?? false,
        setHost: false,
        rejectUnauthorized: false,
        ...tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            reused: req.reusedSocket,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A bounded GET loop through the router, started by requestLoop. */
export interface RequestLoop {
  /** 200s so far. */
  readonly ok: number;
  /** Anything else: `status N` or the client error's message. */
  readonly failures: string[];
  stop(): Promise<{ ok: number; failures: string[] }>;
}

/**
 * GETs to `host` on the router's port, one loop per entry of `agents` (an Agent: kept-alive
 * connections; false: a connection a request), until stopped, `max` requests or `ms`.
 */
export function requestLoop(
  port: number,
  host: string,
  agents: (http.Agent | false)[],
  bound = { max: 50_000, ms: 60_000 },
): RequestLoop {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const deadline = Date.now() + bound.ms;
  const one = (agent: http.Agent | false): Promise<void> =>
    new Promise((resolve) => {
      http
        .get({ host: '127.0.0.1', port, agent, headers: { host } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        })
        .on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
    });
  const loops = agents.map(async (agent) => {
    while (!stop && ok + failures.length < bound.max && Date.now() < deadline) await one(agent);
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    async stop() {
      stop = true;
      await Promise.all(loops);
      return { ok, failures };
    },
  };
}

// --- WebSocket (RFC 6455) just enough for an echo test: frames of any length, masking. ---

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function wsAccept(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}

export function wsFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (len < 126) head[1] = len;
  else if (len < 65536) {
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([head, key, body]);
}

/** Reads frames off a byte stream; calls `onFrame` for each complete one. */
export function wsReader(
  onFrame: (opcode: number, payload: Buffer) => void,
): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      const masked = (buf[1]! & 0x80) !== 0;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskKey = masked ? buf.subarray(off, off + 4) : null;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i]! ^= maskKey[i & 3]!;
      buf = buf.subarray(off + len);
      onFrame(opcode, payload);
    }
  };
}

/** An upstream whose WebSocket endpoint echoes every message back. */
export async function wsEchoUpstream(name: string): Promise<Upstream> {
  const u = await upstream(name);
  u.server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    u.seen.push({
      at: performance.now(),
      method: req.method!,
      url: req.url!,
      headers: req.headers,
    });
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${wsAccept(String(req.headers['sec-websocket-key']))}\r\nX-Upstream: ${name}\r\n\r\n`,
    );
    socket.on('error', () => socket.destroy());
    socket.on(
      'data',
      wsReader((op, payload) => {
        if (op === 8) socket.end(wsFrame(8, payload, false));
        else if (op === 9) socket.write(wsFrame(10, payload, false));
        else socket.write(wsFrame(op, payload, false));
      }),
    );
  });
  return u;
}

export interface WsClient {
  status: number;
  headers: string;
  send(text: string): void;
  next(): Promise<string>;
  close(): Promise<void>;
  socket: Socket;
}

/** Open a WebSocket through the router by hand, so the Host header is ours to choose. */
export function wsConnect(
  port: number,
  host: string,
  path = '/',
  extraHeaders: Record<string, string> = {},
): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const extra = Object.entries(extraHeaders)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    const queue: string[] = [];
    const waiting: ((s: string) => void)[] = [];
    let head = '';
    let upgraded = false;
    const read = wsReader((op, payload) => {
      if (op !== 1) return;
      const text = payload.toString();
      const w = waiting.shift();
      if (w) w(text);
      else queue.push(text);
    });
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return read(chunk);
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      upgraded = true;
      const status = Number(head.slice(9, 12));
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      const client: WsClient = {
        status,
        headers: head.slice(0, end),
        socket,
        send: (text) => void socket.write(wsFrame(1, Buffer.from(text), true)),
        next: () =>
          new Promise((r) => {
            const q = queue.shift();
            if (q !== undefined) r(q);
            else waiting.push(r);
          }),
        close: () =>
          new Promise((r) => {
            socket.once('close', () => r());
            socket.write(wsFrame(8, Buffer.alloc(0), true));
            setTimeout(() => socket.destroy(), 1000).unref();
          }),
      };
      if (rest.length) read(rest);
      resolve(client);
    });
  });
}

export interface RawReply {
  text: string;
  status: number | null;
  closed: boolean;
  /** How many of `parts` were written before the router closed the connection. */
  sent: number;
}

/**
 * Write `parts` to a fresh connection to the router on `port`, `gapMs` apart (a trickle, for
 * slowloris), and collect what comes back until the router closes the socket or `maxMs`
 * passed.
 */
export function rawExchange(
  port: number,
  parts: (string | Buffer)[],
  gapMs = 0,
  maxMs = 30_000,
): Promise<RawReply> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let i = 0;
    let trickle: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      clearTimeout(limit);
      clearInterval(trickle);
      s.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, closed, sent: i });
    };
    const limit = setTimeout(() => finish(false), maxMs);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => {});
    s.on('connect', () => {
      if (gapMs === 0) for (; i < parts.length; i++) s.write(parts[i]!);
      else {
        trickle = setInterval(() => {
          if (i < parts.length && s.writable) s.write(parts[i++]!);
        }, gapMs);
      }
    });
  });
}

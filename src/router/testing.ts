// Test fixtures for the router's tests: real upstream servers on loopback ephemeral ports,
// a router on an ephemeral port with its own data dir, and a plain request helper.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterClient } from './client.ts';
import { startRouter, type RouterHandle, type RouterOptions } from './router.ts';

export interface Upstream {
  port: number;
  name: string;
  /** Every request this upstream saw, with the time it arrived. */
  seen: { at: number; method: string; url: string; headers: http.IncomingHttpHeaders }[];
  server: http.Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, name: string) => void;

const hello: UpstreamHandler = (req, res, name) => {
  const body = JSON.stringify({ name, url: req.url, headers: req.headers });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
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
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    }),
  };
}

export interface TestRouter {
  handle: RouterHandle;
  client: RouterClient;
  dataDir: string;
  port: number;
  close(): Promise<void>;
}

export async function testRouter(opts: Partial<RouterOptions> = {}): Promise<TestRouter> {
  const dataDir = mkdtempSync(join(tmpdir(), 'paas-router-test-'));
  const handle = await startRouter({ dataDir, httpPort: 0, host: '127.0.0.1', domain: 'paas.test', workers: 1, ...opts });
  const client = await RouterClient.connect(dataDir);
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
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(port: number, host: string | null, opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (host !== null) headers.host = host;
    const req = http.request({ host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', headers, agent: false, setHost: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

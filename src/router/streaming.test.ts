// Issue 5 acceptance: WebSocket echo, a Server-Sent Events stream and a 50 MB chunked upload
// pass through the router intact and without being buffered.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sha256,
  testRouter,
  until,
  upstream,
  wsConnect,
  wsEchoUpstream,
  type TestRouter,
  type Upstream,
} from './testing.ts';

let router: TestRouter;
let ws: Upstream;
let sse: Upstream;
let echo: Upstream;
let received = 0;
// SSE in lockstep: the app writes event n+1 only once the client has read event n, so a
// router that buffered the stream would deadlock the test instead of passing it.
const sseSeen: number[] = [];
let sseWake: (() => void) | null = null;
const clientHas = (n: number): Promise<void> =>
  new Promise((resolve) => {
    const check = (): void => {
      if (sseSeen.length > n) resolve();
      else sseWake = check;
    };
    check();
  });
let uploadHash = '';

beforeAll(async () => {
  ws = await wsEchoUpstream('ws');
  sse = await upstream('sse', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    void (async () => {
      for (let n = 0; n < 5; n++) {
        res.write(`id: ${n}\ndata: tick ${n}\n\n`);
        await clientHas(n);
      }
      res.end();
    })();
  });
  // Hashes the upload as it arrives and streams it straight back (chunked both ways).
  echo = await upstream('echo', (req, res) => {
    const h = createHash('sha256');
    received = 0;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.on('data', (c: Buffer) => {
      received += c.length;
      h.update(c);
      res.write(c);
    });
    req.on('end', () => {
      uploadHash = h.digest('hex');
      res.end();
    });
  });
  router = await testRouter();
  await router.client.setRoutes({
    domain: 'paas.test',
    apps: {
      chat: { domains: [], backends: [{ host: '127.0.0.1', port: ws.port }] },
      feed: { domains: [], backends: [{ host: '127.0.0.1', port: sse.port }] },
      files: { domains: [], backends: [{ host: '127.0.0.1', port: echo.port }] },
    },
  });
});

afterAll(async () => {
  await router?.close();
  await Promise.all([ws, sse, echo].map((u) => u?.close()));
});

describe('streaming', () => {
  it('WebSocket: upgrades through the router and echoes small and large messages', async () => {
    const c = await wsConnect(router.port, 'chat.paas.test', '/socket?room=1');
    expect(c.status).toBe(101);
    expect(c.headers).toMatch(/x-upstream: ws/i);
    const seen = ws.seen.at(-1)!;
    expect(seen.url).toBe('/socket?room=1');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-request-id']).toBeTruthy();
    c.send('hello');
    expect(await c.next()).toBe('hello');
    const big = 'z'.repeat(200_000);
    c.send(big);
    expect(await c.next()).toBe(big);
    await c.close();
  });

  it("WebSocket: the dashboard's session cookie does not reach the app; the app's own do", async () => {
    const c = await wsConnect(router.port, 'chat.paas.test', '/socket', {
      Cookie: 'room=7; paas_session=S3SSION',
    });
    expect(c.status).toBe(101);
    expect(ws.seen.at(-1)!.headers.cookie).toBe('room=7');
    await c.close();
    const only = await wsConnect(router.port, 'chat.paas.test', '/socket', {
      Cookie: 'paas_session=S3SSION',
    });
    expect(only.status).toBe(101);
    expect(ws.seen.at(-1)!.headers).not.toHaveProperty('cookie');
    await only.close();
  });

  it('WebSocket to an unknown host gets a 404, not a hang', async () => {
    const c = await wsConnect(router.port, 'nobody.paas.test');
    expect(c.status).toBe(404);
    c.socket.destroy();
  });

  it('SSE: events arrive one by one as the app sends them', async () => {
    const events: { text: string }[] = [];
    const contentType = await new Promise<string>((resolve, reject) => {
      http
        .get(
          {
            host: '127.0.0.1',
            port: router.port,
            path: '/events',
            headers: { host: 'feed.paas.test', accept: 'text/event-stream' },
            agent: false,
          },
          (res) => {
            res.setEncoding('utf8');
            let buf = '';
            res.on('data', (c: string) => {
              buf += c;
              let i: number;
              while ((i = buf.indexOf('\n\n')) >= 0) {
                events.push({ text: buf.slice(0, i) });
                sseSeen.push(events.length - 1);
                sseWake?.();
                buf = buf.slice(i + 2);
              }
            });
            res.on('end', () => resolve(String(res.headers['content-type'])));
          },
        )
        .on('error', reject);
    });
    expect(contentType).toBe('text/event-stream');
    expect(events.map((e) => e.text.split('\n')[0])).toEqual([
      'id: 0',
      'id: 1',
      'id: 2',
      'id: 3',
      'id: 4',
    ]);
    // Not buffered: the app wrote each event only after the client had read the one before.
    expect(sseSeen).toEqual([0, 1, 2, 3, 4]);
  });

  it('a 50 MB chunked upload streams through intact, and back', async () => {
    const data = randomBytes(50 * 1024 * 1024);
    const expected = sha256(data);
    const { status, hash, length } = await new Promise<{
      status: number;
      hash: string;
      length: number;
    }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: router.port,
          method: 'PUT',
          path: '/upload',
          agent: false,
          headers: { host: 'files.paas.test', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          const h = createHash('sha256');
          let length = 0;
          res.on('data', (c: Buffer) => {
            length += c.length;
            h.update(c);
          });
          res.on('end', () => resolve({ status: res.statusCode!, hash: h.digest('hex'), length }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      const CHUNK = 256 * 1024;
      // First 1 MB, then wait until the app has seen bytes: the router streams, not buffers.
      req.write(data.subarray(0, 1024 * 1024));
      until(() => received > 0, 5000, 'upload bytes at the app').then(async () => {
        for (let off = 1024 * 1024; off < data.length; off += CHUNK) {
          if (!req.write(data.subarray(off, off + CHUNK)))
            await new Promise((r) => req.once('drain', r));
        }
        req.end();
      }, reject);
    });
    expect(status).toBe(200);
    expect(uploadHash).toBe(expected);
    expect(length).toBe(data.length);
    expect(hash).toBe(expected);
  });
});

// Issue 5 acceptance: slowloris (head and body), oversized headers, bad Host and garbage
// bytes get 408/431/400 or a closed socket, and the router keeps serving everyone else.
import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  gap,
  rawExchange,
  request,
  testRouter,
  upstream,
  type RawReply,
  type TestRouter,
  type Upstream,
} from './testing.ts';

let router: TestRouter;
let web: Upstream;
let sink: Upstream;

beforeAll(async () => {
  web = await upstream('web');
  // Answers only once it has the whole body, as most apps do.
  sink = await upstream('sink', (req, res) => {
    req.resume();
    req.on('end', () => res.end('got it'));
  });
  router = await testRouter({
    limits: { headersTimeoutMs: 500, bodyTimeoutMs: 500, maxHeaderBytes: 4096 },
  });
  await router.client.setRoutes({
    domain: 'paas.test',
    apps: {
      web: { domains: [], backends: [{ host: '127.0.0.1', port: web.port }] },
      sink: { domains: [], backends: [{ host: '127.0.0.1', port: sink.port }] },
    },
  });
});

afterAll(async () => {
  await router?.close();
  await web?.close();
  await sink?.close();
});

/** A raw exchange with this test's router (testing.ts rawExchange). */
const raw = (parts: (string | Buffer)[], gapMs = 0, maxMs = 30_000): Promise<RawReply> =>
  rawExchange(router.port, parts, gapMs, maxMs);

describe('self-protection', () => {
  it('keeps serving others while being attacked', async () => {
    let served = 0;
    let failed = 0;
    let stop = false;
    const bystander = (async () => {
      while (!stop) {
        const r = await request(router.port, 'web.paas.test').catch(() => null);
        if (r?.status === 200) served++;
        else failed++;
        await new Promise((res) => setTimeout(res, 20));
      }
    })();

    const attacks = await Promise.all([
      // Slowloris on the head: one header line every 200 ms, never the blank line.
      raw(
        [
          'GET / HTTP/1.1\r\n',
          'Host: web.paas.test\r\n',
          ...Array.from({ length: 40 }, (_, k) => `X-Slow-${k}: 1\r\n`),
        ],
        200,
      ),
      // Slowloris on the body: a declared body that never comes.
      raw(
        ['POST / HTTP/1.1\r\nHost: sink.paas.test\r\nContent-Length: 100\r\n\r\n', 'only ten..'],
        0,
      ),
      // Headers past the limit.
      raw([`GET / HTTP/1.1\r\nHost: web.paas.test\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`]),
      // Host header missing, malformed, or twice.
      raw(['GET / HTTP/1.1\r\n\r\n']),
      raw(['GET / HTTP/1.1\r\nHost: bad_host!\r\n\r\n']),
      raw(['GET / HTTP/1.1\r\nHost: web.paas.test\r\nHost: other.paas.test\r\n\r\n']),
      // Not HTTP at all.
      raw([randomBytes(4096)]),
      raw([
        '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage TLS hello on the HTTP port\r\n\r\n',
      ]),
    ]);
    stop = true;
    await bystander;

    const [slowHead, slowBody, big, noHost, badHost, twoHosts, garbage, tls] = attacks;
    expect(slowHead!.status).toBe(408);
    expect(slowHead!.closed).toBe(true);
    // Cut by the router's header timeout before the client got through its trickle.
    expect(slowHead!.sent).toBeLessThan(42);
    expect(slowBody!.status).toBe(408);
    expect(slowBody!.closed).toBe(true);
    expect([400, 431]).toContain(big!.status); // 431 exactly: its own case below
    expect(noHost!.status).toBe(400);
    expect(badHost!.status).toBe(400);
    expect(twoHosts!.status).toBe(400);
    for (const r of [garbage!, tls!]) {
      expect(r.closed).toBe(true);
      expect([400, null]).toContain(r.status);
    }
    for (const r of attacks) expect(r.text).not.toMatch(/"name":"web"/); // none reached the app
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(10);
  });

  it('answers headers just past the limit with 431 and a request id', async () => {
    const big = await raw([
      `GET / HTTP/1.1\r\nHost: web.paas.test\r\nX-Big: ${'a'.repeat(4200)}\r\n\r\n`,
    ]);
    expect(big.status).toBe(431);
    // Error pages from the parser path carry a request id too.
    expect(big.text).toMatch(/x-request-id: [0-9a-f-]{36}/);
  });

  const farPast = gap(
    'haproxy',
    "a head past the buffer (the limit + 1 KB) is refused by haproxy's parser with 400, as nginx does",
  );
  it.skipIf(farPast.skip)(
    `answers headers of twice the limit with 431 too${farPast.why}`,
    async () => {
      const big = await raw([
        `GET / HTTP/1.1\r\nHost: web.paas.test\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`,
      ]);
      expect(big.status).toBe(431);
      expect(big.text).toMatch(/x-request-id: [0-9a-f-]{36}/);
    },
  );

  const smuggling = gap(
    'haproxy',
    'haproxy serves Content-Length with Transfer-Encoding by dropping Content-Length (RFC 9112 §6.3)',
  );
  it.skipIf(smuggling.skip)(
    `refuses a request with both Content-Length and Transfer-Encoding${smuggling.why}`,
    async () => {
      const smuggle = await raw([
        'GET / HTTP/1.1\r\nHost: web.paas.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ]);
      expect(smuggle.closed).toBe(true);
      expect([400, null]).toContain(smuggle.status);
      expect(smuggle.text).not.toMatch(/"name":"web"/);
    },
  );

  it('closes a connection that never sends a byte', async () => {
    // closed is true only when the router hung up: raw() itself gives up as not closed.
    const r = await raw([], 0);
    expect(r.closed).toBe(true);
  });
});

describe('port already taken', () => {
  it('refuses to start where another process listens, instead of sharing the port through SO_REUSEPORT', async () => {
    const other = createNetServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as AddressInfo).port;
    try {
      await expect(testRouter({ httpPort: port, host: '127.0.0.1' })).rejects.toThrow(
        `port ${port} on 127.0.0.1 is already in use`,
      );
    } finally {
      other.close();
    }
  });
});

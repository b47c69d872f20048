// Issue 5 acceptance: under a bounded load loop, ten back-to-back switches between two
// backend sets drop no request, and an old backend sees no request once its drain resolved.
// Also: a drain waits for upgraded connections, and gives up at its timeout.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from './table.ts';
import {
  request,
  testRouter,
  upstream,
  wsConnect,
  wsEchoUpstream,
  type TestRouter,
  type Upstream,
} from './testing.ts';

let router: TestRouter;

// A few milliseconds of work per request, so switches always find requests in flight.
const jittery = (_req: http.IncomingMessage, res: http.ServerResponse, name: string): void => {
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  }, Math.random() * 6);
};

const backends = (set: Upstream[]): Backend[] =>
  set.map((u) => ({ host: '127.0.0.1', port: u.port, id: u.name }));

beforeAll(async () => {
  router = await testRouter();
});

afterAll(async () => {
  await router?.close();
});

describe('switch under load', () => {
  it('ten back-to-back switches: zero failed requests, no request to a drained backend', async () => {
    // Eleven releases of two processes each. Like a deploy, each switch is followed by
    // stopping the old pair as soon as the drain resolved: a drain that resolved early
    // shows up as failed requests, a table that still points at them as late requests.
    const sets = await Promise.all(
      Array.from({ length: 11 }, (_, i) =>
        Promise.all([`v${i}.1`, `v${i}.2`].map((n) => upstream(n, jittery))),
      ),
    );
    await router.client.setRoutes({
      domain: 'paas.test',
      apps: { live: { domains: [], backends: backends(sets[0]!) } },
    });

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const deadline = Date.now() + 20_000;
    const MAX = 20_000;
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        const req = http.get(
          {
            host: '127.0.0.1',
            port: router.port,
            path: '/',
            agent,
            headers: { host: 'live.paas.test' },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) ok++;
              else failures.push(`status ${res.statusCode}`);
              resolve();
            });
          },
        );
        req.on('error', (err) => {
          failures.push(err.message);
          resolve();
        });
      });
    const worker = async (): Promise<void> => {
      while (!stop && ok + failures.length < MAX && Date.now() < deadline) await one();
    };
    const load = Promise.all(Array.from({ length: 16 }, worker));

    const drainedAt = new Map<Upstream, number>();
    const drainedFlags: boolean[] = [];
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 1; i <= 10; i++) {
      const { drained } = await router.client.switch('live', backends(sets[i]!));
      const at = performance.now();
      drainedFlags.push(drained);
      for (const u of sets[i - 1]!) {
        drainedAt.set(u, at);
        await u.close(); // stop the old release right away
      }
      await new Promise((r) => setTimeout(r, 60));
    }
    // Keep the load going after the last switch until it made thousands of requests.
    while (ok < 2000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await load;
    agent.destroy();

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2000);
    expect(drainedFlags).toEqual(Array(10).fill(true));
    for (const [u, at] of drainedAt) {
      expect(
        u.seen.filter((s) => s.at > at),
        `${u.name} got requests after its drain resolved`,
      ).toEqual([]);
    }
    // Every release really served: the switches moved traffic.
    for (const u of sets.flat()) expect(u.seen.length, u.name).toBeGreaterThan(0);
    await Promise.all(sets[10]!.map((u) => u.close()));
  });
});

describe('drain', () => {
  it('waits for an upgraded connection on the old backend to close', async () => {
    const oldWs = await wsEchoUpstream('ws-old');
    const newWs = await wsEchoUpstream('ws-new');
    try {
      await router.client.switch('sockets', [{ host: '127.0.0.1', port: oldWs.port }]);
      const c = await wsConnect(router.port, 'sockets.paas.test');
      expect(c.status).toBe(101);
      let settled: { drained: boolean } | undefined;
      const switching = router.client
        .switch('sockets', [{ host: '127.0.0.1', port: newWs.port }])
        .then((r) => (settled = r));
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBeUndefined(); // still draining: the socket is open
      c.send('still here');
      expect(await c.next()).toBe('still here'); // and still served by the old backend
      await c.close();
      await switching;
      expect(settled).toEqual({ drained: true });
      const fresh = await wsConnect(router.port, 'sockets.paas.test');
      expect(fresh.headers).toMatch(/x-upstream: ws-new/i);
      await fresh.close();
    } finally {
      await oldWs.close();
      await newWs.close();
    }
  });

  it('gives up at the drain timeout and says so', async () => {
    // Never answers while the test runs: the switch can only return by giving up.
    let arrived: () => void = () => {};
    const inFlight = new Promise<void>((r) => (arrived = r));
    const slow = await upstream('slow', (_req, res) => {
      arrived();
      setTimeout(() => res.end('done'), 60_000).unref();
    });
    const fast = await upstream('fast');
    let pending: Promise<unknown> = Promise.resolve();
    try {
      await router.client.switch('lazy', [{ host: '127.0.0.1', port: slow.port }]);
      pending = request(router.port, 'lazy.paas.test').catch(() => {});
      await inFlight; // the request is with the old backend
      let requestEnded = false;
      void pending.finally(() => (requestEnded = true));
      const r = await router.client.switch('lazy', [{ host: '127.0.0.1', port: fast.port }], {
        drainTimeoutMs: 200,
      });
      expect(r).toEqual({ drained: false });
      // It returned while the old request was still in flight: it gave up, it did not wait.
      expect(requestEnded).toBe(false);
    } finally {
      await slow.close(); // cuts the held request
      await pending;
      await fast.close();
    }
  });
});

// A client keeps its connection open across everything an app's life does to the table
// (browsers and proxies in front hold connections for minutes): each change is served on that
// same connection. On haproxy, a change made by a reload would be missed there: the old
// worker answers one more request on it, by its older table (a 404 for a new app).
describe('one kept-alive connection across table changes', () => {
  it('reaches a new app, a new domain, and sees an app limited, stopped and removed', async () => {
    const r = await testRouter();
    const one = await upstream('one');
    const two = await upstream('two');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const seen: string[] = [];
    const ask = (host: string, body?: Buffer): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: r.port,
            method: body ? 'POST' : 'GET',
            agent,
            headers: { host },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              seen.push(`${host} ${req.reusedSocket ? 'reused' : 'new'}`);
              const text = Buffer.concat(chunks).toString();
              resolve(
                res.statusCode === 200
                  ? (JSON.parse(text) as { name: string }).name
                  : String(res.statusCode),
              );
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const route = (host: { port: number }) => [{ host: '127.0.0.1', port: host.port }];
    try {
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: { first: { domains: [], backends: route(one) } },
      });
      expect(await ask('first.paas.test')).toBe('one');
      // A new app with a custom domain.
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: {
          first: { domains: [], backends: route(one) },
          second: { domains: ['second.example.com'], backends: route(two) },
        },
      });
      expect(await ask('second.paas.test')).toBe('two');
      expect(await ask('second.example.com')).toBe('two');
      // A wildcard domain added to a running app.
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: {
          first: { domains: ['*.first.example'], backends: route(one) },
          second: { domains: ['second.example.com'], backends: route(two) },
        },
      });
      expect(await ask('shop.first.example')).toBe('one');
      // An upload limit set on a running app (a body within it passes).
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: {
          first: { domains: ['*.first.example'], backends: route(one), maxBodyBytes: 100 },
          second: { domains: ['second.example.com'], backends: route(two) },
        },
      });
      expect(await ask('first.paas.test', Buffer.alloc(50))).toBe('one');
      // Stopped, then removed.
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: {
          first: {
            domains: ['*.first.example'],
            backends: route(one),
            maxBodyBytes: 100,
            state: 'stopped',
          },
          second: { domains: ['second.example.com'], backends: route(two) },
        },
      });
      expect(await ask('first.paas.test')).toBe('503');
      expect(await ask('second.paas.test')).toBe('two');
      await r.client.setRoutes({
        domain: 'paas.test',
        apps: {
          first: { domains: ['*.first.example'], backends: route(one), maxBodyBytes: 100 },
        },
      });
      expect(await ask('second.example.com')).toBe('404');
      expect(await ask('first.paas.test')).toBe('one');
      // All on the one connection opened by the first request.
      expect(seen.filter((s) => s.endsWith('new'))).toEqual(['first.paas.test new']);
      expect(seen).toHaveLength(9);
      // Past the limit, last: a 413 may close the connection.
      expect(await ask('first.paas.test', Buffer.alloc(200))).toBe('413');
    } finally {
      agent.destroy();
      await one.close();
      await two.close();
      await r.close();
    }
  });
});

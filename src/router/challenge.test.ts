// ACME HTTP-01 answers (issue 18): the router answers a pushed token on its HTTP port for any
// Host, before routing and before the HTTPS redirect, and nothing else under the prefix.
// Part of the data plane contract (vitest.config.ts): it runs once per plane.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCa } from '../../test/helpers/certs.ts';
import { freePort } from '../../test/helpers/pebble.ts';
import { ensureRouterRunning } from './client.ts';
import { SPARE_BACKENDS } from './haproxy/config.ts';
import { haproxyPaths } from './haproxy/plane.ts';
import { cli } from './haproxy/runtime.ts';
import {
  PLANE,
  request,
  testRouter,
  until,
  upstream,
  type TestRouter,
  type Upstream,
} from './testing.ts';

let router: TestRouter;
let web: Upstream;
const token = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const keyAuthz = `${token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;
const other = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';

beforeAll(async () => {
  web = await upstream('web');
  router = await testRouter({ httpsPort: 0 });
  await router.client.setRoutes({
    domain: 'paas.test',
    apps: {
      // redirectHttps: a CA validates over plain HTTP; the answer must not be a redirect.
      web: {
        domains: ['www.example.com'],
        backends: [{ host: '127.0.0.1', port: web.port }],
        redirectHttps: true,
      },
    },
  });
  // The redirect applies once a certificate covers the host: give it one.
  const leaf = TestCa.root(join(router.dataDir, 'ca')).leaf(['www.example.com']);
  await router.client.setCerts({
    hosts: { 'www.example.com': { cert: leaf.chain, key: leaf.key } },
    default: null,
  });
  await router.client.addChallenge(token, keyAuthz);
  await router.client.addChallenge(other, `${other}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`);
});

afterAll(async () => {
  await router?.close();
  await web?.close();
});

const path = (t: string): string => `/.well-known/acme-challenge/${t}`;

/**
 * The status of the token's path on 40 requests, each on its own connection, so they spread
 * over every worker (SO_REUSEPORT) or thread.
 */
async function answers(port: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 40; i++)
    out.push((await request(port, `h${i}.example.net`, { path: path(token) })).status);
  return out;
}

describe('ACME HTTP-01 challenge answers', () => {
  it('answers a pushed token for an app host, an unknown host and no host, never reaching the app', async () => {
    for (const host of ['www.example.com', 'web.paas.test', 'nobody.example.net', null]) {
      const r = await request(router.port, host, { path: path(token) });
      expect(r.status, String(host)).toBe(200);
      expect(r.body).toBe(keyAuthz);
      expect(r.headers['content-type']).toBe('application/octet-stream');
    }
    const head = await request(router.port, 'www.example.com', {
      path: path(token),
      method: 'HEAD',
    });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(web.seen).toEqual([]);
  });

  it('answers 404 for an unknown token, a bad token, traversal, suffixes and other methods', async () => {
    const bad = [
      path('LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuXX'), // well-formed, never pushed
      path(''),
      path('short'),
      path('../../../../etc/passwd'),
      path(`..%2f..%2f${token}`),
      path(`%2e%2e/${token}`),
      path(`${token}/`),
      path(`${token}/../${other}`),
      path(`${token}?x=1`),
      path(`${token}%00`),
      path(`${token}.9jg46WB3rR_AHD`),
    ];
    for (const p of bad) {
      const r = await request(router.port, 'www.example.com', { path: p });
      expect(r.status, p).toBe(404);
      expect(r.body).not.toContain(keyAuthz);
    }
    const post = await request(router.port, 'www.example.com', {
      path: path(token),
      method: 'POST',
      body: 'x',
    });
    expect(post.status).toBe(404);
    expect(web.seen).toEqual([]);
  });

  it('stops answering a removed token, and routes everything else as before', async () => {
    await router.client.removeChallenge(other);
    expect((await request(router.port, 'www.example.com', { path: path(other) })).status).toBe(404);
    expect((await request(router.port, 'www.example.com', { path: path(token) })).status).toBe(200);
    // The rest of /.well-known still goes through routing: here the app's HTTPS redirect,
    // which the challenge path above was answered before.
    const r = await request(router.port, 'www.example.com', { path: '/.well-known/security.txt' });
    expect(r.status).toBe(308);
    expect(r.headers.location).toMatch(
      /^https:\/\/www\.example\.com:\d+\/\.well-known\/security\.txt$/,
    );
  });

  it('refuses to store a challenge that is not an ACME token and its key authorization', async () => {
    await expect(router.client.addChallenge('../etc', `../etc.${'a'.repeat(43)}`)).rejects.toThrow(
      /not an ACME token/,
    );
    await expect(router.client.addChallenge(other, keyAuthz)).rejects.toThrow(
      /does not belong to the token/,
    );
    await expect(router.client.addChallenge(other, `${other}.x\n<script>`)).rejects.toThrow(
      /does not belong/,
    );
  });
});

// The node router's workers are processes of its own (cluster): each gets the pushed set.
describe.runIf(PLANE === 'node')(
  'ACME HTTP-01 challenge answers in a router process with workers',
  () => {
    it('every worker answers a pushed token, a worker started after the push too', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'paas-challenge-workers-'));
      const port = await freePort();
      const r = await ensureRouterRunning({
        dataDir,
        httpPort: port,
        host: '127.0.0.1',
        domain: 'paas.test',
        workers: 2,
        timeoutMs: 60_000,
      });
      try {
        await r.client.addChallenge(token, keyAuthz);
        const all = () => answers(port);
        expect(new Set(await all())).toEqual(new Set([200]));
        // A worker dies; the one started in its place gets the tokens of the orders under way.
        const before = (await r.client.stats()).workers.map((w) => w.pid);
        process.kill(before[0]!, 'SIGKILL');
        await until(
          async () => {
            const now = (await r.client.stats()).workers.map((w) => w.pid);
            return now.length === 2 && !now.includes(before[0]!);
          },
          30_000,
          'a replacement worker',
        );
        expect(new Set(await all())).toEqual(new Set([200]));
        await r.client.removeChallenge(token);
        expect(new Set(await all())).toEqual(new Set([404]));
      } finally {
        r.client.close();
        process.kill(r.pid, 'SIGTERM');
        await until(
          () => {
            try {
              process.kill(r.pid, 0);
              return false;
            } catch {
              return true;
            }
          },
          20_000,
          'the router to stop',
        ).catch(() => undefined);
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  },
);

// haproxy's threads share one map; a reload's new worker reads the map file, which the plane
// rewrites with each push.
describe.runIf(PLANE === 'haproxy')(
  'ACME HTTP-01 challenge answers in haproxy with threads',
  () => {
    it('every thread answers a pushed token, a worker started by a reload after the push too', async () => {
      const r = await testRouter({ workers: 2 });
      try {
        const port = r.port;
        await r.client.addChallenge(token, keyAuthz);
        const all = () => answers(port);
        expect(new Set(await all())).toEqual(new Set([200]));
        const admin = haproxyPaths(r.dataDir).admin;
        const workerPid = async (): Promise<number> =>
          Number(/^Pid: (\d+)/m.exec(await cli(admin, ['show info']))?.[1]);
        const before = await workerPid();
        // More new apps than spare backends: a reload, with a new haproxy process.
        await r.client.setRoutes({
          domain: 'paas.test',
          apps: Object.fromEntries(
            Array.from({ length: SPARE_BACKENDS + 1 }, (_, i) => [
              `other${i}`,
              { domains: [], backends: [{ host: '127.0.0.1', port: web.port }] },
            ]),
          ),
        });
        expect(await workerPid()).not.toBe(before);
        expect(new Set(await all())).toEqual(new Set([200]));
        await r.client.removeChallenge(token);
        expect(new Set(await all())).toEqual(new Set([404]));
      } finally {
        await r.close();
      }
    });
  },
);

// Issue 15, "The API and the dashboard", against a real daemon, router, app and headless
// Chromium: a browser that holds the token as cached Basic credentials cannot be made to
// change anything through the API from another site; the API takes Bearer + JSON; no app may
// claim the dashboard's host names; an app never sees the dashboard's session cookie, even
// on a name the platform could not know is the dashboard's; and a client that never finishes
// its request head (or body) is cut from the API port while a log tail stays open.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/host.ts';
import { launchChromium } from './dashboard-browser.ts';
import { appRepo, cli, DOMAIN, get, push, startPaas, type Paas } from './harness.ts';

let p: Paas;
let browser: Browser;
let attacker: Server;
let attackerPort = 0;
let attackerPage = '';
const APP = 'echo';

interface AppInfo {
  stopped: boolean;
  release: string | null;
}
const info = async (app = APP) =>
  JSON.parse((await cli(p, ['apps:info', app, '--json'])).stdout) as AppInfo;
const appNames = async () =>
  (JSON.parse((await cli(p, ['apps:list', '--json'])).stdout) as { name: string }[]).map(
    (a) => a.name,
  );

beforeAll(async () => {
  p = await startPaas();
  // busybox httpd with a CGI script that prints the Cookie header the app was sent.
  const repo = appRepo('busybox-web');
  mkdirSync(join(repo.dir, 'www/cgi-bin'));
  repo.write(
    'www/cgi-bin/cookies',
    '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nprintf "cookie=[%s]\\n" "$HTTP_COOKIE"\n',
  );
  chmodSync(join(repo.dir, 'www/cgi-bin/cookies'), 0o755);
  repo.commit('echo cookies');
  const r = await push(p, repo.dir, APP);
  expect(r.code, r.stderr).toBe(0);
  // The other site: a page on another origin whose forms post to the API on load.
  attacker = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(attackerPage);
  });
  await new Promise<void>((r2) => attacker.listen(0, '127.0.0.1', r2));
  attackerPort = (attacker.address() as net.AddressInfo).port;
  browser = await launchChromium(['--host-resolver-rules=MAP *.test 127.0.0.1']);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  attacker?.close();
  await p?.cleanup();
});

describe('a cross-site form POST with cached Basic credentials', () => {
  it('is refused and changes nothing, though the same credentials open the registry', async () => {
    const api = `http://127.0.0.1:${p.apiPort}`;
    // The operator once opened the registry in this browser and typed the token into the
    // Basic prompt. At `/v2` (no slash) the browser files the credentials under `/` and from
    // then on sends them unasked with every request to this origin (RFC 7617 §2.2), also
    // with those another site's page makes.
    const ctx = await browser.newContext({
      httpCredentials: { username: 'paas', password: p.token, origin: api },
    });
    const page = await ctx.newPage();
    expect((await page.goto(`${api}/v2`))?.status()).toBe(200);
    // A plain link from the other site to a registry path opens with them.
    attackerPage = `<!doctype html><body><script>location.href = ${JSON.stringify(`${api}/v2/_catalog`)}</script>`;
    const [v2] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/v2/_catalog`),
      page.goto(`http://localhost:${attackerPort}/`),
    ]);
    expect(v2.status()).toBe(200);
    for (const form of [
      // ps:stop needs no body at all; a urlencoded form is what any page can send.
      `<form method="POST" action="${api}/api/apps/${APP}/ps/stop"><input name="x" value="1"></form>`,
      // text/plain can carry a JSON-looking body: {"name":"pwned","x":"="}
      `<form method="POST" enctype="text/plain" action="${api}/api/apps"><input name='{"name":"pwned","x":"' value='"}'></form>`,
      `<form method="POST" enctype="multipart/form-data" action="${api}/api/apps/${APP}/rollback"><input name="release" value="v1"></form>`,
    ]) {
      attackerPage = `<!doctype html><body>${form}<script>document.forms[0].submit()</script>`;
      const action = /action="([^"]+)"/.exec(form)![1]!;
      // A refused credential leaves the browser's cache (a 401 answers it): type it in again.
      expect((await page.goto(`${api}/v2`))?.status()).toBe(200);
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url() === action),
        page.goto(`http://localhost:${attackerPort}/`),
      ]);
      const sent = await resp.request().allHeaders();
      expect(sent.authorization, 'the browser sent its cached Basic credentials').toMatch(
        /^Basic /,
      );
      expect([401, 415], action).toContain(resp.status());
    }
    await ctx.close();
    expect(await info()).toMatchObject({ stopped: false, release: 'v1' });
    expect(await appNames()).not.toContain('pwned');
    expect((await get(p, APP)).status).toBe(200);
  });
});

describe('the API', () => {
  const api = () => `http://127.0.0.1:${p.apiPort}/api`;
  const bearer = () => ({ authorization: `Bearer ${p.token}` });

  it('takes a Bearer token with a JSON body', async () => {
    const r = await fetch(`${api()}/apps`, {
      method: 'POST',
      headers: { ...bearer(), 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ name: 'made-by-json' }),
    });
    expect(r.status).toBe(201);
    expect(await appNames()).toContain('made-by-json');
  });

  it('refuses Basic, and any change that is not JSON, even with the Bearer token', async () => {
    const basic = `Basic ${Buffer.from(`paas:${p.token}`).toString('base64')}`;
    const r = await fetch(`${api()}/apps`, { headers: { authorization: basic } });
    expect(r.status).toBe(401);
    for (const [type, body] of [
      ['application/x-www-form-urlencoded', 'name=by-form'],
      ['text/plain', '{"name":"by-text"}'],
      [undefined, undefined],
    ] as const) {
      const res = await fetch(`${api()}/apps/${APP}/ps/stop`, {
        method: 'POST',
        headers: { ...bearer(), ...(type === undefined ? {} : { 'content-type': type }) },
        body,
      });
      expect(res.status, String(type)).toBe(415);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'UnsupportedMediaType',
      );
    }
    expect((await info()).stopped).toBe(false);
    // The CLI sends Bearer and JSON, with or without a body.
    expect((await cli(p, ['apps:destroy', 'made-by-json', '--force'])).code).toBe(0);
  });
});

describe("the dashboard's host names", () => {
  it('no app may claim them (or an IP address) as a domain', async () => {
    for (const host of [DOMAIN, `paas.${DOMAIN}`, `dashboard.${DOMAIN}`, '127.0.0.1']) {
      const r = await cli(p, ['domains:add', APP, host]);
      expect(r.code, host).toBe(5);
      expect(r.stderr, host).toMatch(/platform itself|IP address/);
    }
    const res = await fetch(`http://127.0.0.1:${p.apiPort}/api/apps/${APP}/domains`, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ domain: `API.${DOMAIN}.` }),
    });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ReservedDomain');
    const d = JSON.parse((await cli(p, ['domains', APP, '--json'])).stdout) as { custom: string[] };
    expect(d.custom).toEqual([]);
    // An ordinary name is still the app's to claim.
    expect((await cli(p, ['domains:add', APP, 'www.shop.test'])).code).toBe(0);
  });

  it("the app never sees paas_session, even on a name the platform cannot know is the dashboard's", async () => {
    // Raw: the router passes the app's cookies and drops the platform's.
    const r = await get(p, APP, '/cgi-bin/cookies', {
      cookie: 'theme=dark; paas_session=S3SSION; cart=3',
    });
    expect(r).toEqual({ status: 200, body: 'cookie=[theme=dark; cart=3]\n' });
    // In a browser: the operator reaches the dashboard as ops.example.test (a DNS name of the
    // box paas was never told about), and an app claims that same name.
    expect((await cli(p, ['domains:add', APP, 'ops.example.test'])).code).toBe(0);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const dash = `http://ops.example.test:${p.apiPort}`;
    await page.goto(`${dash}/login`);
    await page.fill('#token', p.token);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(new URL(page.url()).pathname, await page.content()).toBe('/');
    const session = (await ctx.cookies(dash)).find((c) => c.name === 'paas_session');
    expect(session?.value).toBeTruthy();
    await ctx.addCookies([{ name: 'theme', value: 'dark', url: dash }]);
    // Same host, the router's port: the browser sends the session cookie along (ports do not
    // scope cookies); the app must not receive it.
    const resp = await page.goto(`http://ops.example.test:${p.httpPort}/cgi-bin/cookies`);
    expect(resp?.status()).toBe(200);
    const sent = (await resp!.request().allHeaders()).cookie ?? '';
    expect(sent, 'the browser did send the session').toContain(`paas_session=${session!.value}`);
    const body = await resp!.text();
    expect(body).toContain('theme=dark');
    expect(body).not.toContain('paas_session');
    expect(body).not.toContain(session!.value);
    await ctx.close();
  });
});

describe('the API port under a slow client', () => {
  it('cuts a client that never finishes its request head or body, while a log tail stays open', async () => {
    const tail = spawn(join(REPO, 'bin', 'paas'), ['logs', APP, '-t', '-n', '0'], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let tailed = '';
    tail.stdout.on('data', (d: Buffer) => (tailed += d.toString()));
    // One client trickles header lines and never ends the head; one sends a head that
    // promises a body and then falls silent. Both keep trying for at most 50 s.
    const slow = (first: string, drip: string | null) =>
      new Promise<{ reply: string }>((resolve) => {
        const s = net.connect(p.apiPort, '127.0.0.1');
        let reply = '';
        s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
        s.on('error', () => undefined);
        s.write(first);
        const timer =
          drip === null ? undefined : setInterval(() => s.writable && s.write(drip), 2000);
        const giveUp = setTimeout(() => s.destroy(), 50_000);
        s.on('close', () => {
          clearInterval(timer);
          clearTimeout(giveUp);
          resolve({ reply });
        });
      });
    const [head, body] = await Promise.all([
      slow(`GET /api/ping HTTP/1.1\r\nHost: x\r\n`, 'X-Slow: 1\r\n'),
      slow(
        `POST /api/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${p.token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na`,
        null,
      ),
    ]);
    // Cut by the port (it answered 408), not by our give-up, which destroys without a reply.
    // (Node's own defaults, 60 s for a head checked every 30 s and no body limit at all, would
    // leave both open past the give-up.)
    expect(head.reply).toMatch(/^HTTP\/1\.1 408/);
    expect(body.reply).toMatch(/^HTTP\/1\.1 408/);
    // The tail, as old as both, still follows: a new request's log line arrives.
    expect(tail.exitCode).toBeNull();
    const marker = `after-slowloris-${Date.now()}`;
    expect((await get(p, APP, `/?${marker}`)).status).toBe(200);
    const deadline = Date.now() + 60_000;
    while (!tailed.includes(marker) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    tail.kill();
    expect(tailed).toContain(marker);
  }, 180_000);

  it('does not cut `paas run` whose stdin stays silent for longer than the body limit', async () => {
    // stdin is the request body; a user who reads before typing leaves it silent. The command
    // outlives the 30 s body limit, then reads its stdin, which we give only at the end.
    const c = spawn(
      join(REPO, 'bin', 'paas'),
      ['run', APP, '--', 'sh', '-c', 'sleep 35; echo "woke up"; cat'],
      { env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token } },
    );
    let out = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('woke up')) c.stdin.end('typed at last\n');
    });
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const giveUp = setTimeout(() => c.kill(), 90_000);
      c.on('close', (n) => {
        clearTimeout(giveUp);
        resolve(n);
      });
    });
    expect(out).toContain('woke up\ntyped at last\n');
    expect(code).toBe(0);
  }, 180_000);
});

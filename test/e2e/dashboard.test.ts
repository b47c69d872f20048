// The web dashboard in a real browser against a real daemon: log in with the admin token,
// see the app, reveal one config var, roll back, scale, watch a request's log line arrive
// over SSE, read a build's log, log out — and the walls: no session → login page, a POST
// without the session's CSRF token → 403, a wrong token → no session, output is escaped.
import { existsSync, statSync } from 'node:fs';
import { request } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot } from './dashboard-browser.ts';
import { appRepo, cli, DOMAIN, get, push, startPaas, type Paas } from './harness.ts';

let p: Paas;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
let base: string;
const APP = 'dash';
const SECRET_ONE = 'one-value-9f3a';
const SECRET_TWO = 'two-value-c71e';

interface ReleaseJson {
  version: string;
  description: string;
  status: string | null;
}
const releases = async () =>
  JSON.parse((await cli(p, ['releases', APP, '--json'])).stdout) as ReleaseJson[];

beforeAll(async () => {
  p = await startPaas();
  base = `http://127.0.0.1:${p.apiPort}`;
  // v1 and v2 from two pushes, v3 from a config change: something to show and roll back.
  const repo = appRepo('busybox-web');
  expect((await push(p, repo.dir, APP)).code).toBe(0);
  repo.write('www/index.html', 'hello from v2\n');
  repo.commit('v2');
  expect((await push(p, repo.dir, APP)).code).toBe(0);
  const set = await cli(p, [
    'config:set',
    APP,
    `SECRET_ONE=${SECRET_ONE}`,
    `SECRET_TWO=${SECRET_TWO}`,
  ]);
  expect(set.code, set.stderr).toBe(0);
  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await ctx.newPage();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await p?.cleanup();
});

/** A raw request to the API port with an optional cookie (no redirects followed). */
function raw(
  method: string,
  path: string,
  opts: { cookie?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<{ status: number; location: string | undefined; body: string; setCookie: string[] }> {
  const body = opts.form === undefined ? undefined : new URLSearchParams(opts.form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: p.apiPort,
        method,
        path,
        headers: {
          ...opts.headers,
          ...(opts.cookie === undefined ? {} : { cookie: opts.cookie }),
          ...(body === undefined
            ? {}
            : {
                'content-type': 'application/x-www-form-urlencoded',
                'content-length': Buffer.byteLength(body),
              }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location,
            body: text,
            setCookie: res.headers['set-cookie'] ?? [],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// A page-side expression as a string: this project's TypeScript has no DOM types.
const FITS_WIDTH = 'document.documentElement.scrollWidth <= window.innerWidth';

async function sessionCookie(): Promise<string> {
  const c = (await ctx.cookies(base)).find((x) => x.name === 'paas_session');
  if (c === undefined) throw new Error('the browser has no paas_session cookie');
  return `paas_session=${c.value}`;
}

describe('without a session', () => {
  it('every page, the log stream and every action redirect to the login page', async () => {
    for (const path of ['/', `/apps/${APP}`, `/apps/${APP}/builds/1`, `/apps/${APP}/logs/stream`]) {
      const r = await raw('GET', path);
      expect([r.status, r.location], path).toEqual([303, '/login']);
    }
    const before = (await releases()).length;
    const r = await raw('POST', `/apps/${APP}/rollback`, { form: { release: 'v1' } });
    expect([r.status, r.location]).toEqual([303, '/login']);
    // A made-up session id is no session either.
    const forged = await raw('GET', '/', {
      cookie: 'paas_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    expect([forged.status, forged.location]).toEqual([303, '/login']);
    expect((await releases()).length).toBe(before);
  });

  it('the API still wants its bearer token: a browser session is no API credential', async () => {
    const r = await fetch(`${base}/api/apps`);
    expect(r.status).toBe(401);
  });

  it("a login POST without the login form's own token is refused (login CSRF)", async () => {
    const r = await raw('POST', '/login', { form: { token: p.token } });
    expect(r.status).toBe(403);
    expect(r.setCookie.some((c) => c.startsWith('paas_session='))).toBe(false);
  });
});

describe('in the browser', () => {
  it('a wrong token does not log in', async () => {
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.fill('#token', 'not-the-token');
    const [resp] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(resp?.status()).toBe(401);
    expect(await page.textContent('.flash.error')).toContain('not the admin token');
    expect((await ctx.cookies(base)).some((c) => c.name === 'paas_session')).toBe(false);
    await screenshot(page, 'login-failed');
  });

  it('the admin token logs in to an HttpOnly, SameSite=Strict session; the apps list shows the app, its status and URL', async () => {
    await page.goto(`${base}/login`);
    await screenshot(page, 'login');
    await page.fill('#token', p.token);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(new URL(page.url()).pathname).toBe('/');
    const c = (await ctx.cookies(base)).find((x) => x.name === 'paas_session');
    expect(c).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    const row = page.locator('table.apps tr', { hasText: APP });
    expect(await row.locator('.status').textContent()).toBe('up');
    expect(await row.textContent()).toContain('v3');
    expect(await row.textContent()).toContain(`http://${APP}.${DOMAIN}:${p.httpPort}/`);
    await screenshot(page, 'apps');
  });

  it('a POST with no CSRF token or a wrong one is 403 and changes nothing', async () => {
    const cookie = await sessionCookie();
    const before = await releases();
    const none = await raw('POST', `/apps/${APP}/rollback`, { cookie, form: { release: 'v1' } });
    expect(none.status).toBe(403);
    const wrong = await raw('POST', `/apps/${APP}/rollback`, {
      cookie,
      form: { release: 'v1', csrf: 'x'.repeat(43) },
    });
    expect(wrong.status).toBe(403);
    const logout = await raw('POST', '/logout', { cookie, form: {} });
    expect(logout.status).toBe(403);
    expect(await releases()).toEqual(before);
    // The session survived the refused logout.
    expect((await raw('GET', '/', { cookie })).status).toBe(200);
  });

  it('a POST from another origin is 403 even with the session and its CSRF token (an app on a sibling name is same-site)', async () => {
    const cookie = await sessionCookie();
    const csrf = /name="csrf" value="([^"]+)"/.exec(
      (await raw('GET', `/apps/${APP}`, { cookie })).body,
    )?.[1];
    expect(csrf).toBeDefined();
    const before = await releases();
    for (const origin of [`http://${APP}.${DOMAIN}:${p.httpPort}`, 'http://127.0.0.1', 'null']) {
      const r = await raw('POST', `/apps/${APP}/rollback`, {
        cookie,
        form: { release: 'v1', csrf: csrf! },
        headers: { origin },
      });
      expect(r.status, origin).toBe(403);
    }
    expect(await releases()).toEqual(before);
    // The dashboard's own origin passes (a harmless change: reveal a config value).
    const own = await raw('POST', `/apps/${APP}/config/reveal`, {
      cookie,
      form: { key: 'SECRET_ONE', csrf: csrf! },
      headers: { origin: base },
    });
    expect(own.status).toBe(200);
    expect(own.body).toContain(SECRET_ONE);
  });

  it("an app may not claim the dashboard's host name as a domain", async () => {
    const cookie = await sessionCookie();
    const csrf = /name="csrf" value="([^"]+)"/.exec(
      (await raw('GET', `/apps/${APP}`, { cookie })).body,
    )?.[1];
    for (const domain of [DOMAIN, `dashboard.${DOMAIN}`, '127.0.0.1']) {
      const r = await raw('POST', `/apps/${APP}/domains`, {
        cookie,
        form: { domain, csrf: csrf! },
        headers: { origin: base },
      });
      expect(r.status, domain).toBe(303);
      const page = await raw('GET', `/apps/${APP}`, { cookie });
      expect(page.body, domain).toMatch(/platform itself|IP address/);
    }
    const domains = JSON.parse((await cli(p, ['domains', APP, '--json'])).stdout) as {
      custom: string[];
    };
    expect(domains.custom).toEqual([]);
  });

  it('an unknown app is a 404 page and a bad name a 400, both inside the layout', async () => {
    const cookie = await sessionCookie();
    const missing = await raw('GET', '/apps/nope', { cookie });
    expect(missing.status).toBe(404);
    expect(missing.body).toContain('app &quot;nope&quot; does not exist');
    const bad = await raw('GET', '/apps/Bad_Name', { cookie });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('Log out');
  });

  it('the app page lists config keys without their values; Reveal shows one value, and only that one', async () => {
    await page.goto(`${base}/apps/${APP}`);
    const html = await page.content();
    expect(html).toContain('SECRET_ONE');
    expect(html).not.toContain(SECRET_ONE);
    expect(html).not.toContain(SECRET_TWO);
    for (const id of ['processes', 'releases', 'config', 'domains', 'builds', 'logs'])
      expect(await page.locator(`section#${id}`).count(), id).toBe(1);
    await screenshot(page, 'app');
    await Promise.all([page.waitForNavigation(), page.click('button[data-reveal="SECRET_ONE"]')]);
    expect(await page.textContent('code.value[data-key="SECRET_ONE"]')).toBe(SECRET_ONE);
    expect(await page.content()).not.toContain(SECRET_TWO);
    await screenshot(page, 'config-revealed');
    // Revealed for that response only: the next visit hides it again.
    await page.goto(`${base}/apps/${APP}`);
    expect(await page.content()).not.toContain(SECRET_ONE);
  });

  it('a log line arrives in the live tail (SSE) when the app is requested', async () => {
    await page.goto(`${base}/apps/${APP}`);
    await page.waitForSelector('#log[data-live="1"]', { timeout: 10_000 });
    const marker = `tail-${Date.now()}`;
    expect((await get(p, APP, `/?${marker}`)).status).toBe(200);
    await page.locator('#log', { hasText: marker }).waitFor({ timeout: 15_000 });
    await screenshot(page, 'logs-live');
  });

  it('log output is text, never markup, in the page and in the tail', async () => {
    await page.goto(`${base}/apps/${APP}`);
    await page.waitForSelector('#log[data-live="1"]', { timeout: 10_000 });
    // `<b/id=pwned>` parses as <b id="pwned"> if it ever reaches the DOM as markup.
    const evil = '<b/id=pwned>';
    await get(p, APP, `/?${evil}`);
    await page.locator('#log', { hasText: 'pwned' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#pwned').count()).toBe(0);
    await page.reload();
    expect(await page.locator('#log').textContent()).toContain('pwned');
    expect(await page.locator('#pwned').count()).toBe(0);
  });

  it("Roll back to v1 makes v4 with v1's code and serves it", async () => {
    await page.goto(`${base}/apps/${APP}`);
    await Promise.all([
      page.waitForNavigation({ timeout: 60_000 }),
      page.click('button[data-rollback="v1"]'),
    ]);
    expect(await page.textContent('.flash')).toContain('Rollback to v1: released v4');
    expect(await page.locator('#releases tr.live').textContent()).toContain('v4');
    expect(await get(p, APP)).toEqual({ status: 200, body: 'hello from v1\n' });
    expect((await releases())[0]).toMatchObject({
      version: 'v4',
      description: 'Rollback to v1',
      status: 'succeeded',
    });
    await screenshot(page, 'rolled-back');
  });

  it('scaling web to 2 runs two web processes', async () => {
    await page.goto(`${base}/apps/${APP}`);
    await page.fill('#scale-web', '2');
    await Promise.all([
      page.waitForNavigation({ timeout: 60_000 }),
      page.click('form.scale button'),
    ]);
    const flash = await page.textContent('.flash');
    expect(flash, `scaling from the dashboard failed: ${flash}`).toContain('scaled web to 2');
    const procs = await page.locator('#processes tbody tr').allTextContents();
    expect(procs.filter((t) => /web\.\d/.test(t) && t.includes('running'))).toHaveLength(2);
    await screenshot(page, 'scaled');
  });

  it('Restart replaces the processes and the app keeps answering', async () => {
    await page.goto(`${base}/apps/${APP}`);
    const before = await page.locator('#processes tbody tr').allTextContents();
    await Promise.all([
      page.waitForNavigation({ timeout: 60_000 }),
      page.click('button[data-ps="restart"]'),
    ]);
    expect(await page.textContent('.flash')).toContain('restarted every process');
    const after = await page.locator('#processes tbody tr').allTextContents();
    expect(after.filter((t) => t.includes('running'))).toHaveLength(before.length);
    expect(after).not.toEqual(before);
    expect(await get(p, APP)).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it("a build's page shows its log", async () => {
    await page.goto(`${base}/apps/${APP}`);
    await Promise.all([page.waitForNavigation(), page.locator('#builds a').last().click()]);
    expect(new URL(page.url()).pathname).toMatch(new RegExp(`^/apps/${APP}/builds/\\d+$`));
    expect(await page.textContent('#build-log')).toContain('COPY www /www');
    expect(await page.locator('h1 .status').textContent()).toBe('succeeded');
    await screenshot(page, 'build');
  });

  it('the app page fits a phone screen', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    await phone.addCookies((await ctx.cookies(base)).filter((c) => c.name === 'paas_session'));
    const m = await phone.newPage();
    await m.goto(`${base}/apps/${APP}`);
    // Wide tables scroll inside their card; the page itself never scrolls sideways.
    expect(await m.evaluate(FITS_WIDTH)).toBe(true);
    await screenshot(m, 'app-phone');
    await m.goto(`${base}/`);
    expect(await m.evaluate(FITS_WIDTH)).toBe(true);
    await screenshot(m, 'apps-phone');
    await phone.close();
  });

  it('log out ends the session on the server, not only in the browser', async () => {
    const cookie = await sessionCookie();
    await page.goto(`${base}/`);
    await Promise.all([page.waitForNavigation(), page.click('nav button')]);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect(await raw('GET', '/', { cookie })).toMatchObject({ status: 303, location: '/login' });
  });

  it('wrote a screenshot of each page', () => {
    for (const n of [
      'login',
      'apps',
      'app',
      'config-revealed',
      'logs-live',
      'rolled-back',
      'build',
      'app-phone',
    ]) {
      const f = `${import.meta.dirname}/../../test-artifacts/dashboard/${n}.png`;
      expect(existsSync(f) && statSync(f).size > 1000, n).toBe(true);
    }
  });
});

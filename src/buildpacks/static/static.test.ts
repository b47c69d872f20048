import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppFiles } from '../app.ts';
import { buildpackContract, FIXTURES } from '../contract.case.ts';
import { staticSite } from './index.ts';

buildpackContract(staticSite, {
  matches: ['static'],
  ignores: ['express', 'procfile', 'nothing', 'yarn'],
});

function tmpApp(files: Record<string, string>): AppFiles {
  const dir = mkdtempSync('/tmp/paas-bp-static-');
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(dir, rel), text);
  return new AppFiles(dir);
}

describe('static buildpack plan', () => {
  it('copies only the configured root, with the 404 page and clean URLs', () => {
    const plan = staticSite.plan(new AppFiles(path.join(FIXTURES, 'static')));
    const text = staticSite.render({ ...plan.inputs, reason: 'static.json found' });
    expect(text).toMatch(/^COPY public\/ \/srv\/site\/$/m);
    expect(text).toContain('STATIC_CLEAN_URLS=1 STATIC_ERROR_PAGE="404.html"');
    expect(plan.files['.paas-buildpack/static-server.mjs']).toContain('createServer');
  });

  it('an index.html alone serves the repository root, hiding deploy files', () => {
    const a = tmpApp({ 'index.html': '<p>hi</p>' });
    try {
      const text = staticSite.render({ ...staticSite.plan(a).inputs, reason: 'x' });
      expect(text).toMatch(/^COPY \. \/srv\/site\/$/m);
      expect(text).toContain('STATIC_HIDE="static.json,Procfile,app.json,Dockerfile,README.md"');
    } finally {
      rmSync(a.dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{ root: '../etc' }, /"root" must be a directory inside the repository/],
    [{ root: '/srv' }, /"root" must be a directory inside the repository/],
    [{ root: 'missing' }, /"root" is "missing" but there is no such directory/],
    [{ error_page: 'nope.html' }, /"error_page" is "nope\.html" but nope\.html does not exist/],
    [{ clean_urls: 'yes' }, /"clean_urls" must be true or false/],
  ])('refuses static.json %j', (cfg, message) => {
    const a = tmpApp({ 'static.json': JSON.stringify(cfg), 'index.html': '' });
    try {
      expect(() => staticSite.plan(a)).toThrow(message);
    } finally {
      rmSync(a.dir, { recursive: true, force: true });
    }
  });

  it('warns about static.json keys it does not support', () => {
    const a = tmpApp({ 'static.json': '{"https_only": true}', 'index.html': '' });
    try {
      expect(staticSite.plan(a).warnings).toEqual([
        expect.stringMatching(/"https_only" is not supported/),
      ]);
    } finally {
      rmSync(a.dir, { recursive: true, force: true });
    }
  });
});

// The server itself, on the host against the fixture's public/ (the build tests run it in the image).
describe('static server', () => {
  let child: ChildProcess;
  let base: string;
  beforeAll(async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    child = spawn(process.execPath, [path.join(import.meta.dirname, 'server.mjs')], {
      env: {
        PORT: String(port),
        STATIC_ROOT: path.join(FIXTURES, 'static/public'),
        STATIC_CLEAN_URLS: '1',
        STATIC_ERROR_PAGE: '404.html',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => {
    child.kill();
  });

  it('serves index.html at / with a revalidating cache header', async () => {
    const r = await fetch(`${base}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('public, max-age=0, must-revalidate');
    expect(await r.text()).toContain('Hello from a static site');
  });

  it('serves assets for a year, immutable, and answers 304 to a matching ETag', async () => {
    const r = await fetch(`${base}/assets/app.css`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = r.headers.get('etag')!;
    const again = await fetch(`${base}/assets/app.css`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('clean URLs: /about serves about.html, /about.html redirects to /about', async () => {
    expect(await (await fetch(`${base}/about`)).text()).toContain('about this static site');
    const r = await fetch(`${base}/about.html?x=1`, { redirect: 'manual' });
    expect(r.status).toBe(301);
    expect(r.headers.get('location')).toBe('/about?x=1');
  });

  it('unknown paths, traversal and files outside the root get the custom 404 page', async () => {
    for (const p of ['/nope', '/../secret.txt', '/%2e%2e/secret.txt', '/%ff']) {
      const r = await fetch(`${base}${p}`);
      expect(r.status, p).toBe(404);
      expect(await r.text()).toContain('custom 404');
    }
  });

  it('only GET and HEAD', async () => {
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(405);
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(50);
  });
});

// Issue 18, end to end: an operator's certificate added with the real CLI to a deployed app,
// served by the real router on its HTTPS port and checked by curl against the test CA; a
// refused certificate says why; HTTP redirects only once a certificate exists; the
// certificates come back after the daemon restarts (pushed again to the adopted router).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCa } from '../helpers/certs.ts';
import { waitFor } from '../helpers/host.ts';
import {
  appRepo,
  cli,
  DOMAIN,
  E2E_PLANE,
  get,
  push,
  remoteLines,
  startPaas,
  type Paas,
} from './harness.ts';

const run = promisify(execFile);
let p: Paas;
let ca: TestCa;
let dir: string;
const repos: string[] = [];
/** `{ cert }` of www.example.com as `certs --json` showed it after certs:add. */
let added = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paas-e2e-https-'));
  ca = TestCa.root(join(dir, 'ca')).intermediate('paas e2e intermediate');
  p = await startPaas();
}, 120_000);
afterAll(async () => {
  await p?.cleanup();
  for (const d of [dir, ...repos]) if (d) rmSync(d, { recursive: true, force: true });
});

async function curlHttps(
  host: string,
  path = '/',
): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run('curl', [
      '-sS',
      '--max-time',
      '10',
      '--cacert',
      ca.rootPath,
      '--resolve',
      `${host}:${p.httpsPort}:127.0.0.1`,
      '-w',
      '\n%{http_code} %{http_version}',
      `https://${host}:${p.httpsPort}${path}`,
    ]);
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

describe('HTTPS with an operator certificate', () => {
  it('certs:add, then curl --cacert reaches the deployed app over HTTPS', async () => {
    const repo = appRepo('busybox-web');
    repos.push(repo.dir);
    const r = await push(p, repo.dir, 'web');
    expect(r.code, remoteLines(r).join('\n')).toBe(0);
    expect((await cli(p, ['domains:add', 'web', 'www.example.com'])).code).toBe(0);

    // Before a certificate: a clean handshake failure, not some other certificate.
    const before = await curlHttps('www.example.com', '/index.html');
    expect(before.code).not.toBe(0);

    const wrong = ca.leaf(['www.example.com']);
    const other = ca.leaf(['www.example.com']);
    const refused = await cli(p, [
      'certs:add',
      'web',
      '--cert',
      wrong.certPath,
      '--key',
      other.keyPath,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /the private key does not match the certificate for www\.example\.com/,
    );

    const addRun = await cli(p, [
      'certs:add',
      'web',
      '--cert',
      wrong.certPath,
      '--key',
      wrong.keyPath,
    ]);
    expect(addRun.code, addRun.stderr).toBe(0);
    expect(addRun.stdout).toMatch(
      /^added a certificate to web for www\.example\.com, issued by CN=paas e2e intermediate, expires \d{4}-\d\d-\d\d \(in \d+ days\)$/m,
    );
    expect(statSync(join(p.dataDir, 'certs', 'web', 'www.example.com.key')).mode & 0o777).toBe(
      0o600,
    );

    added = (await cli(p, ['certs', 'web', '--json'])).stdout;
    added = JSON.stringify({
      cert: (JSON.parse(added) as { hosts: { host: string; cert: unknown }[] }).hosts.find(
        (h) => h.host === 'www.example.com',
      )!.cert,
    });
    const ok = await curlHttps('www.example.com', '/index.html');
    expect(ok.err).toBe('');
    expect(ok.out).toMatch(/\n200 2$/);

    const listed = await cli(p, ['certs', 'web', '--json']);
    const info = JSON.parse(listed.stdout) as {
      hosts: { host: string; servedBy: string; cert: { issuer: string } | null }[];
    };
    expect(info.hosts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          host: 'www.example.com',
          servedBy: 'own',
          cert: expect.objectContaining({ issuer: 'CN=paas e2e intermediate' }),
        }),
        expect.objectContaining({ host: `web.${DOMAIN}`, servedBy: 'none', cert: null }),
      ]),
    );
  }, 300_000);

  it('redirects HTTP to HTTPS only for hosts with a certificate, after domains:redirect-https on', async () => {
    expect((await cli(p, ['domains:redirect-https', 'web', 'on', '--hsts'])).code).toBe(0);
    const plain = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{redirect_url}',
      '--resolve',
      `www.example.com:${p.httpPort}:127.0.0.1`,
      `http://www.example.com:${p.httpPort}/index.html?x=1`,
    ]);
    expect(plain.stdout).toBe(`308 https://www.example.com:${p.httpsPort}/index.html?x=1`);
    // The default name has no certificate: still served over HTTP.
    expect((await get(p, 'web', '/index.html')).status).toBe(200);
    const head = await run('curl', [
      '-sSI',
      '--cacert',
      ca.rootPath,
      '--resolve',
      `www.example.com:${p.httpsPort}:127.0.0.1`,
      `https://www.example.com:${p.httpsPort}/index.html`,
    ]);
    expect(head.stdout).toMatch(/strict-transport-security: max-age=31536000/i);
  });

  it('the default certificate serves <app>.<domain>, and certificates survive a daemon restart', async () => {
    const def = ca.leaf([`*.${DOMAIN}`]);
    const r = await cli(p, [
      'certs:add',
      '--default',
      '--cert',
      def.certPath,
      '--key',
      def.keyPath,
    ]);
    expect(r.code, r.stderr).toBe(0);
    // The router outlives the daemon and would keep its certificates anyway: stop it too, so
    // only the daemon's push at start can bring them back.
    await p.stop();
    const haproxy = E2E_PLANE === 'haproxy';
    const pidFile = haproxy ? join('haproxy', 'haproxy.pid') : 'router.pid';
    const pid = Number(readFileSync(join(p.dataDir, 'router', pidFile), 'utf8'));
    process.kill(pid, 'SIGTERM');
    await waitFor(
      'the router to exit',
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      30_000,
    );
    // haproxy reads its certificates from files of its own at start: remove them, so here
    // too only the daemon's push brings them back.
    if (haproxy) rmSync(join(p.dataDir, 'router', 'haproxy', 'certs'), { recursive: true });
    await p.start();
    const own = await curlHttps('www.example.com', '/index.html');
    expect(own.out).toMatch(/\n200 2$/);
    const byDefault = await curlHttps(`web.${DOMAIN}`, '/index.html');
    expect(byDefault.err).toBe('');
    expect(byDefault.out).toMatch(/\n200 2$/);
    // The dashboard's app page shows each host's certificate, expiry and auto state.
    const html = await dashboardPage('/apps/web');
    const certs = html.slice(
      html.indexOf('id="certs"'),
      html.indexOf('</table>', html.indexOf('id="certs"')),
    );
    const expires = JSON.parse(added).cert.notAfter.slice(0, 10) as string;
    expect(certs).toMatch(
      new RegExp(`<code>www\\.example\\.com</code></td><td>manual</td>\\s*<td>${expires}</td>`),
    );
    expect(certs).toMatch(
      new RegExp(`<code>web\\.${DOMAIN.replace('.', '\\.')}</code></td><td>default</td>`),
    );
    expect(certs).toContain('<td>off</td>');
    expect(JSON.parse((await cli(p, ['certs', 'web', '--json'])).stdout).hosts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host: `web.${DOMAIN}`, servedBy: 'default' }),
      ]),
    );
    // certs:remove: the host falls back to the default, which does not name it: curl refuses.
    expect((await cli(p, ['certs:remove', 'web', 'www.example.com'])).code).toBe(0);
    const removed = await curlHttps('www.example.com', '/index.html');
    expect(removed.code).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    expect(removed.err).toMatch(/no alternative certificate subject name matches|does not match/);
  }, 120_000);
});

/** Log in to the dashboard as a browser would (login form's double submit) and GET a page. */
async function dashboardPage(path: string): Promise<string> {
  const base = `http://127.0.0.1:${p.apiPort}`;
  const login = await fetch(`${base}/login`, { redirect: 'manual' });
  const csrf = /paas_login=([A-Za-z0-9_-]+)/.exec(login.headers.getSetCookie().join(';'))?.[1];
  expect(csrf).toBeDefined();
  const posted = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `paas_login=${csrf}` },
    body: new URLSearchParams({ token: p.token, csrf: csrf! }).toString(),
  });
  const session = /(paas_session=[A-Za-z0-9_-]+)/.exec(
    posted.headers.getSetCookie().join(';'),
  )?.[1];
  expect(session, `login answered ${posted.status}`).toBeDefined();
  const page = await fetch(`${base}${path}`, { headers: { cookie: session! }, redirect: 'manual' });
  expect(page.status).toBe(200);
  return page.text();
}

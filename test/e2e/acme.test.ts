// Issue 18 acceptance, the whole story on loopback: a real daemon and router, a pushed app with
// a custom domain, `paas certs:auto` against Debian's pebble (HTTP-01 answered by the router),
// curl over HTTPS with pebble's root; renewals (the daemon told to renew anything, every few
// seconds) swap certificates under a request loop without a failed request; a failed order
// (the name stops resolving) leaves the last certificate serving and the error in `certs APP`.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts';
import { appRepo, cli, push, startPaas, type Paas } from './harness.ts';

let pebble: Pebble;
let paas: Paas;
let httpsPort: number;
let root: string;

/** One HTTPS request on a fresh connection (a new handshake): status, body, leaf serial. */
function fetchTls(): Promise<{ status: number; body: string; serial: string }> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: httpsPort,
        servername: 'app.test',
        headers: { host: 'app.test' },
        ca: readFileSync(root),
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial }));
        res.on('error', (e) => resolve({ status: 0, body: String(e), serial: '' }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, body: String(e), serial: '' }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function autoState(): Promise<{
  hosts: { host: string; failures: number; lastError: string | null }[];
}> {
  const r = await fetch(`http://127.0.0.1:${paas.apiPort}/api/apps/shop/certs/auto`, {
    headers: { authorization: `Bearer ${paas.token}` },
  });
  return (await r.json()) as {
    hosts: { host: string; failures: number; lastError: string | null }[];
  };
}

beforeAll(async () => {
  const httpPort = await freePort();
  pebble = await startPebble(httpPort);
  paas = await startPaas({
    httpPort,
    daemonArgs: [
      '--acme-directory',
      pebble.directoryUrl,
      '--acme-ca-file',
      pebble.caFile,
      // Everything is due at every check: each check renews (a short-lived certificate's life).
      '--acme-renew-before',
      '36500d',
      '--acme-check-every',
      '3s',
    ],
  });
  httpsPort = paas.httpsPort;
  root = await pebble.rootFile();
});

afterAll(async () => {
  await paas?.cleanup();
  await pebble?.close();
});

describe('certs:auto against pebble', () => {
  it('gets a certificate for a custom domain, and curl reaches the app over HTTPS with it', async () => {
    const repo = appRepo('busybox-web');
    expect((await push(paas, repo.dir, 'shop')).code).toBe(0);
    expect((await cli(paas, ['domains:add', 'shop', 'app.test'])).code).toBe(0);
    const r = await cli(paas, ['certs:auto', 'shop', '--email', 'ops@example.com']);
    expect(r.stderr + r.stdout).toMatch(/app\.test: certificate (issued|valid)/);
    expect(r.code).toBe(0);
    const curl = await promisify(execFile)('curl', [
      '-sS',
      '--fail',
      '--cacert',
      root,
      '--resolve',
      `app.test:${httpsPort}:127.0.0.1`,
      `https://app.test:${httpsPort}/`,
    ]);
    expect(curl.stdout).toContain('hello from v1');
  });

  it('renewals swap the certificate without a failed request', async () => {
    const serials = new Set<string>();
    const failures: string[] = [];
    let count = 0;
    const t0 = Date.now();
    // Bounded: 2000 requests or 90 s; done once three certificates have served, after 50 requests.
    while (count < 2000 && Date.now() - t0 < 90_000 && (serials.size < 3 || count < 50)) {
      const r = await fetchTls();
      count++;
      if (r.status !== 200 || !r.body.includes('hello from v1'))
        failures.push(`${r.status} ${r.body.slice(0, 120)}`);
      else serials.add(r.serial);
    }
    expect(failures).toEqual([]);
    expect(serials.size).toBeGreaterThanOrEqual(3);
  });

  it('a failed order keeps the last certificate serving and shows the error', async () => {
    pebble.unresolvable.add('app.test');
    const deadline = Date.now() + 60_000;
    let error: string | null = null;
    while (error === null && Date.now() < deadline) {
      error = (await autoState()).hosts.find((h) => h.host === 'app.test')?.lastError ?? null;
      if (error === null) await new Promise((r) => setTimeout(r, 250));
    }
    expect(error).toMatch(/app\.test/);
    // Backing off now: the same certificate serves request after request.
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await fetchTls();
      expect(r.status).toBe(200);
      seen.add(r.serial);
    }
    expect(seen.size).toBe(1);
    const certs = await cli(paas, ['certs', 'shop']);
    expect(certs.code).toBe(0);
    expect(certs.stdout).toContain(error!.slice(0, 40));
    // Off: no more orders; the certificate already issued keeps serving.
    const off = await cli(paas, ['certs:auto', 'shop', '--off']);
    expect(off.stderr).toBe('');
    expect(off.code).toBe(0);
    expect(((await autoState()) as unknown as { enabled: boolean }).enabled).toBe(false);
    expect((await fetchTls()).status).toBe(200);
  });
});

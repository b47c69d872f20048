// Issue 18: the router terminates TLS with the certificates the daemon pushes over the
// control socket. Real clients on loopback: curl, openssl s_client, node's tls, https and
// http2 clients, and undici's WebSocket. Certificates are made by openssl. Part of the data
// plane contract (vitest.config.ts): it runs once per plane.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { Agent, WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCa, type TestLeaf } from '../../test/helpers/certs.ts';
import type { RouterCerts } from './certs.ts';
import { haproxyPaths } from './haproxy/plane.ts';
import { cli } from './haproxy/runtime.ts';
import {
  PLANE,
  request,
  testRouter,
  upstream,
  wsEchoUpstream,
  type TestRouter,
  type Upstream,
} from './testing.ts';

const run = promisify(execFile);

/** openssl s_client with stdin closed: it handshakes, prints, and exits. */
function sClient(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${httpsPort()}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

let dir: string;
let ca: TestCa;
let router: TestRouter;
let apps: Record<'alpha' | 'beta' | 'gamma', Upstream>;
let ws: Upstream;
let sse: Upstream;
let sink: Upstream;
const leaves = {} as Record<'alpha' | 'beta' | 'gamma' | 'def' | 'chat' | 'feed', TestLeaf>;
// SSE in lockstep (as in streaming.test.ts): event n+1 is written only once the client has
// read event n, so a buffering proxy deadlocks the test instead of passing it.
let sseRead = -1;
let sseWake: (() => void) | null = null;

const pair = (l: TestLeaf) => ({ cert: l.chain, key: l.key });
function certSet(withDefault: boolean): RouterCerts {
  return {
    hosts: {
      'alpha.example.com': pair(leaves.alpha),
      '*.beta.example.com': pair(leaves.beta),
      'gamma.example.org': pair(leaves.gamma),
      'chat.example.com': pair(leaves.chat),
      'feed.example.com': pair(leaves.feed),
    },
    default: withDefault ? { ...pair(leaves.def), names: ['*.paas.test'] } : null,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paas-https-'));
  ca = TestCa.root(join(dir, 'ca')).intermediate('paas test intermediate');
  leaves.alpha = ca.leaf(['alpha.example.com']);
  leaves.beta = ca.leaf(['*.beta.example.com']);
  leaves.gamma = ca.leaf(['gamma.example.org']);
  leaves.def = ca.leaf(['*.paas.test']);
  leaves.chat = ca.leaf(['chat.example.com']);
  leaves.feed = ca.leaf(['feed.example.com']);
  apps = {
    alpha: await upstream('alpha'),
    beta: await upstream('beta'),
    gamma: await upstream('gamma'),
  };
  ws = await wsEchoUpstream('ws');
  // Reads the whole body and answers its length and hash: what the app received.
  sink = await upstream('sink', (req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => ((n += c.length), h.update(c)));
    req.on('end', () => {
      const body = JSON.stringify({ bytes: n, sha256: h.digest('hex'), method: req.method });
      res.writeHead(201, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  });
  sse = await upstream('sse', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    void (async () => {
      for (let n = 0; n < 4; n++) {
        res.write(`data: tick ${n}\n\n`);
        await new Promise<void>((resolve) => {
          const check = (): void => (sseRead >= n ? resolve() : void (sseWake = check));
          check();
        });
      }
      res.end();
    })();
  });
  // Two workers (haproxy: threads): every one of them must get each certificate set.
  router = await testRouter({ httpsPort: 0, workers: 2 });
  await router.client.setRoutes({
    domain: 'paas.test',
    apps: {
      alpha: {
        domains: ['alpha.example.com', 'nocert.example.com'],
        backends: [{ host: '127.0.0.1', port: apps.alpha.port }],
        redirectHttps: true,
        hsts: true,
      },
      beta: {
        domains: ['*.beta.example.com'],
        backends: [{ host: '127.0.0.1', port: apps.beta.port }],
      },
      gamma: {
        domains: ['gamma.example.org'],
        backends: [{ host: '127.0.0.1', port: apps.gamma.port }],
        redirectHttps: true,
      },
      chat: { domains: ['chat.example.com'], backends: [{ host: '127.0.0.1', port: ws.port }] },
      sink: {
        domains: ['sink.beta.example.com'],
        backends: [{ host: '127.0.0.1', port: sink.port }],
      },
      feed: { domains: ['feed.example.com'], backends: [{ host: '127.0.0.1', port: sse.port }] },
      // A small upload limit: an HTTP/2 body carries no Content-Length to check up front.
      tiny: {
        domains: ['tiny.beta.example.com'],
        backends: [{ host: '127.0.0.1', port: sink.port }],
        maxBodyBytes: 1000,
      },
    },
  });
  await router.client.setCerts(certSet(false));
}, 60_000);

afterAll(async () => {
  await router?.close();
  await Promise.all([...Object.values(apps ?? {}), ws, sse, sink].map((u) => u?.close()));
  rmSync(dir, { recursive: true, force: true });
});

const httpsPort = (): number => router.handle.httpsPort!;

/** The certificate a fresh handshake with `servername` gets (or the handshake's error). */
function handshake(
  servername: string | undefined,
  extra: tls.ConnectionOptions = {},
): Promise<{ cn: string; fingerprint: string; protocol: string | null } | { error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: httpsPort(),
      servername,
      rejectUnauthorized: false,
      ...extra,
    });
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      resolve({
        cn: String(c.subject.CN),
        fingerprint: c.fingerprint256,
        protocol: s.getProtocol(),
      });
      s.destroy();
    });
    s.once('error', (e) => resolve({ error: e.message }));
  });
}

async function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '10', ...args]);
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

const resolveArg = (host: string): string[] => ['--resolve', `${host}:${httpsPort()}:127.0.0.1`];

describe('certificates by SNI', () => {
  it('picks each app’s own certificate among three (exact, wildcard, another exact)', async () => {
    for (const [name, cn] of [
      ['alpha.example.com', 'alpha.example.com'],
      ['shop.beta.example.com', '*.beta.example.com'],
      ['gamma.example.org', 'gamma.example.org'],
    ]) {
      const r = await curl([
        '--cacert',
        ca.rootPath,
        ...resolveArg(name!),
        '-w',
        '\n%{ssl_verify_result} %{http_version}',
        `https://${name}:${httpsPort()}/`,
      ]);
      expect(r.err).toBe('');
      const [body, status] = r.out.split('\n');
      expect(status).toBe('0 2');
      expect(JSON.parse(body!).name).toBe(
        name!.split('.').at(-3) === 'beta' ? 'beta' : name!.split('.')[0],
      );
      expect(await handshake(name)).toMatchObject({ cn });
    }
  });

  it('openssl s_client verifies the chain the router sends, and TLS 1.1 is refused', async () => {
    const ok = await sClient([
      '-servername',
      'gamma.example.org',
      '-CAfile',
      ca.rootPath,
      '-verify_return_error',
      '-verify_hostname',
      'gamma.example.org',
    ]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('Verify return code: 0 (ok)');
    expect(ok.out).toMatch(/1 s:CN = paas test intermediate/);
    expect(
      await handshake('gamma.example.org', {
        maxVersion: 'TLSv1.1',
        minVersion: 'TLSv1',
        // The client would refuse TLS 1.1 itself at OpenSSL's default level: lower it, so
        // only the router's floor can be what refuses.
        ciphers: 'DEFAULT@SECLEVEL=0',
      }),
    ).toMatchObject({ error: expect.stringMatching(/protocol version|unsupported protocol/i) });
    expect(await handshake('gamma.example.org', { maxVersion: 'TLSv1.2' })).toMatchObject({
      protocol: 'TLSv1.2',
    });
  });

  it('an unknown SNI, and no SNI, fail the handshake cleanly while there is no default', async () => {
    for (const name of [
      'unknown.example.net',
      'nocert.example.com',
      'x.y.beta.example.com',
      undefined,
    ]) {
      const r = await handshake(name);
      expect(r, String(name)).toHaveProperty('error');
    }
    const s = await sClient(['-servername', 'unknown.example.net']);
    expect(s.code).not.toBe(0);
    // A TLS alert, not a reset: the client learns the handshake failed and why. haproxy's
    // strict-sni sends RFC 6066's own alert for it (unrecognized_name, 112); node sends
    // handshake_failure.
    expect(s.out).toMatch(
      PLANE === 'haproxy'
        ? /tlsv1 unrecognized name.*SSL alert number 112/i
        : /alert handshake failure|sslv3 alert/i,
    );
    expect(s.out).toContain('no peer certificate available');
  });

  it('with a default, an unknown SNI gets the default, never another app’s', async () => {
    await router.client.setCerts(certSet(true));
    try {
      for (const name of [
        'unknown.example.net',
        'nocert.example.com',
        'app.paas.test',
        undefined,
      ]) {
        expect(await handshake(name), String(name)).toMatchObject({ cn: '*.paas.test' });
      }
      expect(await handshake('alpha.example.com')).toMatchObject({ cn: 'alpha.example.com' });
    } finally {
      await router.client.setCerts(certSet(false));
    }
  });

  it('refuses a pushed set OpenSSL cannot use and keeps serving the old one', async () => {
    const bad = certSet(false);
    bad.hosts['alpha.example.com'] = { cert: leaves.alpha.chain, key: leaves.gamma.key };
    await expect(router.client.setCerts(bad)).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(await handshake('alpha.example.com')).toMatchObject({ cn: 'alpha.example.com' });
    expect(await router.client.certs()).toEqual({
      hosts: [
        '*.beta.example.com',
        'alpha.example.com',
        'chat.example.com',
        'feed.example.com',
        'gamma.example.org',
      ],
      default: null,
    });
  });
});

describe('HTTP over TLS', () => {
  it('answers HTTP/2 (node’s http2 client) and HTTP/1.1 (curl), forwarding X-Forwarded-Proto: https', async () => {
    const session = http2.connect(`https://alpha.example.com:${httpsPort()}`, {
      ca: ca.rootPem,
      lookup: ((_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) =>
        o.all
          ? cb(null, [{ address: '127.0.0.1', family: 4 }])
          : cb(null, '127.0.0.1', 4)) as never,
    });
    const reply = await new Promise<{ status: number; hsts: unknown; body: string }>(
      (resolve, reject) => {
        const req = session.request({ ':path': '/h2?x=1' });
        let body = '';
        let status = 0;
        let hsts: unknown;
        req.on('response', (h) => {
          status = Number(h[':status']);
          hsts = h['strict-transport-security'];
        });
        req.on('data', (c: Buffer) => (body += c));
        req.on('end', () => resolve({ status, hsts, body }));
        req.on('error', reject);
        req.end();
      },
    );
    session.close();
    expect(reply.status).toBe(200);
    expect(reply.hsts).toBe('max-age=31536000');
    const seen = JSON.parse(reply.body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe('/h2?x=1');
    expect(seen.headers.host).toBe(`alpha.example.com:${httpsPort()}`);
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-port']).toBe(String(httpsPort()));
    expect(Object.keys(seen.headers).filter((k) => k.startsWith(':'))).toEqual([]);

    const h1 = await curl([
      '--http1.1',
      '-i',
      '--cacert',
      ca.rootPath,
      ...resolveArg('alpha.example.com'),
      `https://alpha.example.com:${httpsPort()}/h1`,
    ]);
    expect(h1.out).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(h1.out).toMatch(/strict-transport-security: max-age=31536000/i);
    expect(
      JSON.parse(h1.out.slice(h1.out.indexOf('\r\n\r\n') + 4)).headers['x-forwarded-proto'],
    ).toBe('https');
    // HSTS only where asked: gamma did not.
    const g = await curl([
      '-i',
      '--cacert',
      ca.rootPath,
      ...resolveArg('gamma.example.org'),
      `https://gamma.example.org:${httpsPort()}/`,
    ]);
    expect(g.out).toMatch(/^HTTP\/2 200/);
    expect(g.out).not.toMatch(/strict-transport-security/i);
  });

  it('an HTTP/2 POST streams its body to the app over HTTP/1.1, intact', async () => {
    const body = randomBytes(1024 * 1024 + 7);
    const session = http2.connect(`https://127.0.0.1:${httpsPort()}`, {
      ca: ca.rootPem,
      servername: 'sink.beta.example.com',
    });
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/upload',
        ':authority': 'sink.beta.example.com',
      });
      let out = '';
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => (out += c));
      req.on('end', () => resolve({ status, body: out }));
      req.on('error', reject);
      req.end(body);
    });
    session.close();
    expect(r.status).toBe(201);
    expect(JSON.parse(r.body)).toEqual({
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      method: 'POST',
    });
  });

  it('an HTTP/2 body without Content-Length is held to the app’s upload limit (413), and one within it passes', async () => {
    const post = (body: Buffer): Promise<number> => {
      const session = http2.connect(`https://127.0.0.1:${httpsPort()}`, {
        ca: ca.rootPem,
        servername: 'tiny.beta.example.com',
      });
      return new Promise<number>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/upload',
          ':authority': 'tiny.beta.example.com',
        });
        let status = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(status));
        req.on('close', () => resolve(status));
        req.on('error', (e) => (status ? resolve(status) : reject(e)));
        req.end(body);
      }).finally(() => session.close());
    };
    expect(await post(randomBytes(5000))).toBe(413);
    expect(await post(randomBytes(900))).toBe(201);
  });

  it('a websocket over TLS (undici’s WebSocket) echoes', async () => {
    const dispatcher = new Agent({
      connect: {
        ca: ca.rootPem,
        lookup: (_h, o, cb) =>
          (o as { all?: boolean }).all
            ? (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [
                { address: '127.0.0.1', family: 4 },
              ])
            : (cb as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4),
      },
    });
    const sock = new WebSocket(`wss://chat.example.com:${httpsPort()}/socket`, { dispatcher });
    const got = await new Promise<string>((resolve, reject) => {
      sock.onopen = () => sock.send('hello over tls');
      sock.onmessage = (m) => resolve(String(m.data));
      sock.onerror = () => reject(new Error('websocket failed'));
    });
    expect(got).toBe('hello over tls');
    expect(ws.seen.at(-1)!.headers['x-forwarded-proto']).toBe('https');
    sock.close();
    await dispatcher.close();
  });

  it('SSE over TLS streams each event as the app writes it (HTTP/2 and HTTP/1.1)', async () => {
    for (const via of ['h2', 'h1'] as const) {
      sseRead = -1;
      const events: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const onData = (buf: { s: string }, c: string): void => {
          buf.s += c;
          let i: number;
          while ((i = buf.s.indexOf('\n\n')) >= 0) {
            events.push(buf.s.slice(0, i));
            buf.s = buf.s.slice(i + 2);
            sseRead = events.length - 1;
            sseWake?.();
          }
        };
        const buf = { s: '' };
        if (via === 'h2') {
          const session = http2.connect(`https://127.0.0.1:${httpsPort()}`, {
            ca: ca.rootPem,
            servername: 'feed.example.com',
          });
          const req = session.request({ ':path': '/events', ':authority': 'feed.example.com' });
          req.setEncoding('utf8');
          req.on('data', (c: string) => onData(buf, c));
          req.on('end', () => (session.close(), resolve()));
          req.on('error', reject);
          req.end();
        } else {
          https
            .get(
              {
                host: '127.0.0.1',
                port: httpsPort(),
                servername: 'feed.example.com',
                path: '/events',
                headers: { host: 'feed.example.com' },
                ca: ca.rootPem,
                agent: false,
              },
              (res) => {
                res.setEncoding('utf8');
                res.on('data', (c: string) => onData(buf, c));
                res.on('end', resolve);
              },
            )
            .on('error', reject);
        }
      });
      expect(events, via).toEqual(['data: tick 0', 'data: tick 1', 'data: tick 2', 'data: tick 3']);
    }
  });
});

describe('HTTP → HTTPS', () => {
  it('redirects with 308 and the HTTPS location once a certificate covers the host', async () => {
    const r = await request(router.port, 'alpha.example.com', {
      path: '/a?b=c',
      method: 'POST',
      body: 'x',
    });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe(`https://alpha.example.com:${httpsPort()}/a?b=c`);
    // Never an HSTS header over plain HTTP (RFC 6797 §7.2).
    expect(r.headers['strict-transport-security']).toBeUndefined();
  });

  it('does not redirect a host without a certificate, nor an ACME challenge, nor an app that did not ask', async () => {
    const none = await request(router.port, 'nocert.example.com');
    expect(none.status).toBe(200);
    expect(JSON.parse(none.body).name).toBe('alpha');
    const acme = await request(router.port, 'alpha.example.com', {
      path: '/.well-known/acme-challenge/tok',
    });
    // Not redirected: the router answers the challenge path itself (challenge.test.ts), and a
    // token it was not given is its 404, never the app's page nor a 308.
    expect(acme.status).toBe(404);
    const beta = await request(router.port, 'x.beta.example.com');
    expect(beta.status).toBe(200);
  });
});

describe('certificate replacement', () => {
  it('serves a new certificate to new handshakes without failing a request on open keep-alive connections', async () => {
    const before = (await handshake('gamma.example.org')) as { fingerprint: string };
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: ca.rootPem });
    let ok = 0;
    const failures: string[] = [];
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        https
          .get(
            {
              host: '127.0.0.1',
              port: httpsPort(),
              servername: 'gamma.example.org',
              headers: { host: 'gamma.example.org' },
              agent,
            },
            (res) => {
              res.resume();
              res.on('end', () => {
                if (res.statusCode === 200) ok++;
                else failures.push(String(res.statusCode));
                resolve();
              });
            },
          )
          .on('error', (e) => {
            failures.push(e.message);
            resolve();
          });
      });
    // A bounded loop (count and time) of 4 clients, the certificate replaced midway.
    const deadline = Date.now() + 20_000;
    let n = 0;
    const renewed = ca.leaf(['gamma.example.org']);
    const loop = async (): Promise<void> => {
      while (n < 400 && Date.now() < deadline) {
        n++;
        await one();
      }
    };
    const clients = [loop(), loop(), loop(), loop()];
    while (n < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const next = certSet(false);
    next.hosts['gamma.example.org'] = pair(renewed);
    await router.client.setCerts(next);
    await Promise.all(clients);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(ok).toBe(n);
    expect(n).toBeGreaterThan(100);
    // Every new handshake (both workers) sees the new certificate.
    const after = await Promise.all(
      Array.from({ length: 8 }, () => handshake('gamma.example.org')),
    );
    const renewedFp = new (await import('node:crypto')).X509Certificate(renewed.leaf)
      .fingerprint256;
    expect(renewedFp).not.toBe(before.fingerprint);
    for (const a of after) expect(a).toMatchObject({ fingerprint: renewedFp });
  }, 60_000);
});

// haproxy serves its certificates from files of its own and changes them over the runtime
// socket: a pushed set is served without a reload (the same worker process), and the keys
// on disk are the daemon's (0600, in a 0700 directory).
describe.runIf(PLANE === 'haproxy')('haproxy: certificates at run time', () => {
  it('adds, replaces and removes hosts’ certificates without a reload; its key files are 0600 in a 0700 dir', async () => {
    const paths = haproxyPaths(router.dataDir);
    const workerPid = async (): Promise<number> =>
      Number(/^Pid: (\d+)/m.exec(await cli(paths.admin, ['show info']))?.[1]);
    const pid = await workerPid();
    const delta = ca.leaf(['delta.example.com']);
    const renewed = ca.leaf(['alpha.example.com']);
    const next = certSet(false);
    delete next.hosts['gamma.example.org'];
    next.hosts['delta.example.com'] = pair(delta);
    next.hosts['alpha.example.com'] = pair(renewed);
    await router.client.setCerts(next);
    try {
      const fp = (l: TestLeaf): string => new X509Certificate(l.leaf).fingerprint256;
      expect(await handshake('delta.example.com')).toMatchObject({ fingerprint: fp(delta) });
      expect(await handshake('alpha.example.com')).toMatchObject({ fingerprint: fp(renewed) });
      expect(await handshake('gamma.example.org')).toHaveProperty('error');
      expect(await workerPid()).toBe(pid);
      expect(statSync(paths.certs).mode & 0o777).toBe(0o700);
      const files = readdirSync(paths.certs);
      expect(files.sort()).toEqual(
        [
          '_.beta.example.com.pem',
          'alpha.example.com.pem',
          'chat.example.com.pem',
          'delta.example.com.pem',
          'feed.example.com.pem',
        ].sort(),
      );
      for (const f of files) expect(statSync(join(paths.certs, f)).mode & 0o777, f).toBe(0o600);
    } finally {
      await router.client.setCerts(certSet(false));
    }
    expect(await handshake('gamma.example.org')).toMatchObject({ cn: 'gamma.example.org' });
    expect(await workerPid()).toBe(pid);
  });
});

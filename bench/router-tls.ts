// HTTPS router benchmark (issue 18): the node plane terminating TLS beside nginx, with the plain rows
// of the same run for reference; bench/router.ts has the per-plane plain-HTTP comparison.
// (Split from bench/router.ts when the data planes landed; to be folded back once the haproxy
// plane serves HTTPS.)
// Router benchmark: the same tiny upstream measured direct, through nginx and through the
// paas router, in one run on loopback (MEASURED.md: only same-run ratios hold).
//   node bench/router.ts   [env: BENCH_SECONDS=10 BENCH_WORKERS=<cores> BENCH_CONNECTIONS=32 BENCH_ROUNDS=1]
// With BENCH_ROUNDS=n each path is measured n times, interleaved (direct, nginx, paas, direct,
// …), and the median round is shown: on a shared box that keeps drift out of the ratio.
// nginx gets the same worker count, upstream keepalive, and a buffered access log like
// the router's (the router always logs each request).
// HTTPS rows: both terminate TLS for the same upstream with the same certificate (ECDSA
// P-256), protocols (TLS 1.2+) and cipher list: once over keep-alive connections, once with
// `Connection: close` so every request is a new TCP connection and a full handshake (its
// rps is handshakes per second).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureRouterRunning } from '../src/router/index.ts';
import { TLS_CIPHERS } from '../src/router/certs.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WORKERS = Number(process.env.BENCH_WORKERS ?? availableParallelism());
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const HOST = 'bench.paas.test';

const UPSTREAM = `
const http = require('node:http');
const body = Buffer.from('hello world\\n');
const s = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }); res.end(body); });
s.keepAliveTimeout = 65000;
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function startUpstream(children: ChildProcess[]): Promise<number> {
  const c = spawn(process.execPath, ['-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return new Promise((resolve, reject) => {
    c.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    c.once('exit', (code) => reject(new Error(`upstream exited ${code}`)));
  });
}

async function waitPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never answered`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ms(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

type Target = { name: string; port: number; tls?: boolean; close?: boolean };

function wrk(t: Target, seconds: number, name = t.name): Result {
  // wrk stops by itself after -d; --timeout bounds any single request.
  const out = execFileSync(
    'wrk',
    [
      `-t2`,
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      '--timeout',
      '5s',
      '--latency',
      '-H',
      `Host: ${HOST}`,
      ...(t.close ? ['-H', 'Connection: close'] : []),
      `${t.tls ? 'https' : 'http'}://127.0.0.1:${t.port}/`,
    ],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  // Anchored: "Req/Sec … 68.50%" also contains "50%".
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const errs = [/Socket errors:.*$/m.exec(out)?.[0], /Non-2xx.*$/m.exec(out)?.[0]]
    .filter(Boolean)
    .join('; ');
  return { name, rps, p50, p99, errors: errs };
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'paas-bench-router-'));
  let routerPid: number | undefined;
  try {
    const upstream = await startUpstream(children);
    // One certificate for both: the default for *.paas.test (wrk sends the IP as SNI, so
    // the router serves it as its default, nginx as its only one).
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=*.paas.test',
        '-addext',
        'subjectAltName=DNS:*.paas.test',
        '-keyout',
        join(tmp, 'tls.key'),
        '-out',
        join(tmp, 'tls.crt'),
      ],
      { stdio: 'ignore' },
    );
    const nginxTls = await freePort();

    const nginxPort = await freePort();
    writeFileSync(
      join(tmp, 'nginx.conf'),
      `
worker_processes ${WORKERS};
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log ${tmp}/nginx-access.log combined buffer=64k flush=1s;
  upstream app { server 127.0.0.1:${upstream}; keepalive 64; }
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
  server {
    listen 127.0.0.1:${nginxTls} ssl http2;
    ssl_certificate ${tmp}/tls.crt;
    ssl_certificate_key ${tmp}/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${TLS_CIPHERS};
    ssl_prefer_server_ciphers on;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`,
    );
    children.push(spawn('nginx', ['-c', join(tmp, 'nginx.conf'), '-p', tmp], { stdio: 'inherit' }));
    await waitPort(nginxPort);

    const paasPort = await freePort();
    const paasTls = await freePort();
    const { client, pid } = await ensureRouterRunning({
      dataDir: join(tmp, 'data'),
      httpPort: paasPort,
      httpsPort: paasTls,
      host: '127.0.0.1',
      domain: 'paas.test',
      workers: WORKERS,
      timeoutMs: 60_000, // a loaded box can take longer than the default 15 s to start workers
    });
    routerPid = pid;
    await client.setRoutes({
      domain: 'paas.test',
      apps: { bench: { domains: [], backends: [{ host: '127.0.0.1', port: upstream }] } },
    });
    await client.setCerts({
      hosts: {},
      default: {
        cert: readFileSync(join(tmp, 'tls.crt'), 'utf8'),
        key: readFileSync(join(tmp, 'tls.key'), 'utf8'),
        names: ['*.paas.test'],
      },
    });
    client.close();

    const targets: Target[] = [
      { name: 'direct', port: upstream },
      { name: 'nginx', port: nginxPort },
      { name: 'paas', port: paasPort },
      { name: 'nginx-tls', port: nginxTls, tls: true },
      { name: 'paas-tls', port: paasTls, tls: true },
      { name: 'nginx-hs', port: nginxTls, tls: true, close: true },
      { name: 'paas-hs', port: paasTls, tls: true, close: true },
    ];
    for (const t of targets) wrk(t, 3, 'warm-up'); // JIT, keep-alive pools
    const runs: Result[][] = targets.map(() => []);
    for (let r = 0; r < ROUNDS; r++) targets.forEach((t, i) => runs[i]!.push(wrk(t, SECONDS)));
    const median = (xs: Result[]): Result =>
      [...xs].sort((x, y) => x.rps - y.rps)[Math.floor(xs.length / 2)]!;
    const results = runs.map(median);

    console.log(
      `wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, ${WORKERS} worker(s) for nginx and paas, loopback, ${ROUNDS} round(s)`,
    );
    if (ROUNDS > 1)
      for (const [i, { name }] of targets.entries())
        console.log(`  ${name} rps by round: ${runs[i]!.map((r) => r.rps.toFixed(0)).join(' ')}`);
    console.log('path        rps       p50 ms   p99 ms   errors');
    for (const r of results) {
      console.log(
        `${r.name.padEnd(10)} ${r.rps.toFixed(0).padStart(7)}   ${r.p50.toFixed(2).padStart(6)}   ${r.p99.toFixed(2).padStart(6)}   ${r.errors || '-'}`,
      );
    }
    const [direct, nginx, paas, nginxTlsR, paasTlsR, nginxHs, paasHs] = results as Result[] as [
      Result,
      Result,
      Result,
      Result,
      Result,
      Result,
      Result,
    ];
    console.log(`paas/nginx throughput: ${(paas.rps / nginx.rps).toFixed(2)}x`);
    console.log(`paas/nginx over TLS (keep-alive): ${(paasTlsR.rps / nginxTlsR.rps).toFixed(2)}x`);
    console.log(
      `handshakes/s (Connection: close): paas ${paasHs.rps.toFixed(0)}, nginx ${nginxHs.rps.toFixed(0)}, ${(paasHs.rps / nginxHs.rps).toFixed(2)}x`,
    );
    console.log(
      `added p99 vs direct: paas +${(paas.p99 - direct.p99).toFixed(2)} ms, nginx +${(nginx.p99 - direct.p99).toFixed(2)} ms`,
    );
  } finally {
    if (routerPid !== undefined) {
      try {
        process.kill(routerPid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

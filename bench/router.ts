// Router benchmark: the same tiny upstream measured direct, through nginx and through each
// paas data plane (node, haproxy), in one run on loopback (MEASURED.md: only same-run ratios
// hold). Two rows per path: kept-alive client connections, and a new connection per request
// (`Connection: close`).
//   node bench/router.ts   [env: BENCH_SECONDS=10 BENCH_WORKERS=<each one's default> BENCH_CONNECTIONS=32 BENCH_ROUNDS=1
//                           BENCH_PLANES=node,haproxy]
// With BENCH_ROUNDS=n each path is measured n times, interleaved (direct, nginx, node, …),
// and the median round is shown: on a shared box that keeps drift out of the ratio.
// nginx gets the same worker count, upstream keepalive, and a buffered access log like
// the router's (the router always logs each request).
// HTTPS rows (issue 18), for every plane that serves HTTPS: nginx and the plane terminate
// TLS for the same upstream with the same certificate (ECDSA P-256), protocols (TLS 1.2+) and
// cipher list, once over keep-alive connections and once with `Connection: close`, where
// every request is a full handshake (its rps is handshakes per second).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDataPlane,
  parsePlaneKind,
  PLANE_KINDS,
  type DataPlane,
} from '../src/router/index.ts';
import { TLS_CIPHERS } from '../src/router/certs.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// Each as deployed unless BENCH_WORKERS says: nginx `worker_processes auto` (one per core, as
// Dokku's nginx runs), each plane its own default (haproxy: half the cores).
const WORKERS =
  process.env.BENCH_WORKERS === undefined ? undefined : Number(process.env.BENCH_WORKERS);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const HOST = 'bench.paas.test';
// With the haproxy plane comes `hap-bare`: haproxy itself with no rules and no log
// (startBareHaproxy), the floor under the plane.
// Only these planes (all by default): on a shared box, measuring one plane beside nginx
// keeps the rounds short and the load from the other plane's processes out of the run.
const PLANES = (process.env.BENCH_PLANES ?? PLANE_KINDS.join(','))
  .split(',')
  .map((p) => parsePlaneKind(p.trim()));

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

type Target = { name: string; port: number; tls?: boolean };

function wrk(t: Target, seconds: number, close = false, name = t.name): Result {
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
      ...(close ? ['-H', 'Connection: close'] : []),
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

/**
 * The floor under the haproxy plane: the same haproxy with the plane's thread count and
 * upstream reuse, but no rules and no access log. What the plane costs past this row is
 * its contract (request ids, host checks, limits, pages, the log line); what this row
 * lacks beside nginx is haproxy's own.
 */
async function startBareHaproxy(
  tmp: string,
  upstream: number,
  threads: number,
  children: ChildProcess[],
): Promise<Target> {
  const port = await freePort();
  const cfg = join(tmp, 'haproxy-bare.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      `  nbthread ${threads}`,
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 60s',
      '  http-reuse always',
      'frontend http',
      `  bind 127.0.0.1:${port}`,
      '  default_backend app',
      'backend app',
      `  server s1 127.0.0.1:${upstream}`,
      '',
    ].join('\n'),
  );
  // Its own session, as nginx and the planes are.
  children.push(spawn('haproxy', ['-f', cfg], { stdio: 'inherit', detached: true }));
  await waitPort(port);
  return { name: 'hap-bare', port };
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'paas-bench-router-'));
  const planes: DataPlane[] = [];
  try {
    const upstream = await startUpstream(children);
    // One certificate for nginx and the planes: the default for *.paas.test (wrk sends the
    // IP as SNI, so a plane serves its default, nginx its only one).
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
        .concat(['-days', '2', '-subj', '/CN=*.paas.test', '-addext'])
        .concat(['subjectAltName=DNS:*.paas.test', '-keyout', join(tmp, 'tls.key')])
        .concat(['-out', join(tmp, 'tls.crt')]),
      { stdio: 'ignore' },
    );
    const nginxTls = await freePort();

    const nginxPort = await freePort();
    // The same proxying on nginx's plain and TLS servers (what each plane does on both ports).
    const proxyToApp = `    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
`;
    writeFileSync(
      join(tmp, 'nginx.conf'),
      `
worker_processes ${WORKERS ?? 'auto'};
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log ${tmp}/nginx-access.log combined buffer=64k flush=1s;
  upstream app { server 127.0.0.1:${upstream}; keepalive 64; }
  server {
    listen 127.0.0.1:${nginxPort};
${proxyToApp}  }
  server {
    listen 127.0.0.1:${nginxTls} ssl http2;
    ssl_certificate ${tmp}/tls.crt;
    ssl_certificate_key ${tmp}/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${TLS_CIPHERS};
    ssl_prefer_server_ciphers on;
${proxyToApp}  }
}
`,
    );
    // In its own session, as the planes are (both are detached so they outlive the daemon)
    // and as a production nginx runs: with the kernel's autogroup scheduling a session is a
    // CPU group, and nginx sharing the bench's group with the upstream and wrk measured
    // 1.3-3x faster than the same nginx in a group of its own on a loaded box.
    children.push(
      spawn('nginx', ['-c', join(tmp, 'nginx.conf'), '-p', tmp], {
        stdio: 'inherit',
        detached: true,
      }),
    );
    await waitPort(nginxPort);

    const table = {
      domain: 'paas.test',
      apps: { bench: { domains: [], backends: [{ host: '127.0.0.1', port: upstream }] } },
    };
    const targets: Target[] = [
      { name: 'direct', port: upstream },
      { name: 'nginx', port: nginxPort },
    ];
    const tlsTargets: Target[] = [{ name: 'nginx', port: nginxTls, tls: true }];
    const threads = [`nginx ${WORKERS ?? availableParallelism()}`];
    for (const kind of PLANES) {
      const port = await freePort();
      const plane = createDataPlane(kind, {
        dataDir: join(tmp, kind),
        httpPort: port,
        httpsPort: await freePort(),
        host: '127.0.0.1',
        domain: 'paas.test',
        ...(WORKERS === undefined ? {} : { workers: WORKERS }),
      });
      planes.push(plane);
      await plane.connect();
      await plane.setRoutes(table);
      targets.push({ name: kind, port });
      const health = await plane.health();
      threads.push(`${kind} ${health.workers}`);
      const httpsPort = health.httpsPort;
      if (httpsPort === undefined) continue; // a plane without HTTPS yet: no TLS rows
      await plane.setCerts({
        hosts: {},
        default: {
          cert: readFileSync(join(tmp, 'tls.crt'), 'utf8'),
          key: readFileSync(join(tmp, 'tls.key'), 'utf8'),
          names: ['*.paas.test'],
        },
      });
      tlsTargets.push({ name: kind, port: httpsPort, tls: true });
      if (kind === 'haproxy')
        targets.push(await startBareHaproxy(tmp, upstream, health.workers, children));
    }

    // TLS rows only when a plane serves HTTPS: nginx alone there compares with nothing.
    const tls = tlsTargets.length > 1 ? tlsTargets : [];
    for (const t of [...targets, ...tls]) wrk(t, 3, false, 'warm-up'); // JIT, pools
    const rows: { mode: string; results: Result[] }[] = [];
    for (const [mode, list, close] of [
      ['keep-alive', targets, false],
      ['new connection per request', targets, true],
      ['TLS, keep-alive', tls, false],
      ['TLS, new connection per request (rps = handshakes/s)', tls, true],
    ] as const) {
      if (list.length === 0) continue;
      const runs: Result[][] = list.map(() => []);
      for (let r = 0; r < ROUNDS; r++)
        list.forEach((t, i) => runs[i]!.push(wrk(t, SECONDS, close)));
      const median = (xs: Result[]): Result =>
        [...xs].sort((x, y) => x.rps - y.rps)[Math.floor(xs.length / 2)]!;
      rows.push({ mode, results: runs.map(median) });
      if (ROUNDS > 1)
        for (const [i, t] of list.entries())
          console.log(
            `  ${mode}: ${t.name} rps by round: ${runs[i]!.map((x) => x.rps.toFixed(0)).join(' ')}`,
          );
    }

    console.log(
      `wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, worker processes/threads: ${threads.join(', ')}; loopback, ${ROUNDS} round(s)`,
    );
    for (const { mode, results } of rows) {
      console.log(`\n${mode}`);
      console.log('path      rps       p50 ms   p99 ms   vs nginx rps / p99   errors');
      const nginx = results.find((r) => r.name === 'nginx')!;
      for (const r of results) {
        const vs =
          r.name === 'direct' || r.name === 'nginx'
            ? '-'
            : `${(r.rps / nginx.rps).toFixed(2)}x / ${(r.p99 / nginx.p99).toFixed(2)}x`;
        console.log(
          `${r.name.padEnd(8)} ${r.rps.toFixed(0).padStart(7)}   ${r.p50.toFixed(2).padStart(6)}   ${r.p99.toFixed(2).padStart(6)}   ${vs.padEnd(19)}  ${r.errors || '-'}`,
        );
      }
    }
  } finally {
    for (const p of planes) await p.stop().catch(() => {});
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

// Which upstream client for the router's plain-request path? The same minimal proxy (one
// process, keep-alive to one tiny upstream) built three ways, measured interleaved in one run:
//   http-proxy + keep-alive agent | node:http request + keep-alive agent | undici Pool.dispatch
//   node bench/router-clients.ts   [env: BENCH_SECONDS=5 BENCH_ROUNDS=3]
// The router uses the winner for plain requests and keeps http-proxy for upgrades.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROOT = new URL('..', import.meta.url).pathname;

const UPSTREAM = `
const http = require('node:http');
const body = Buffer.from('hello world\\n');
const s = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }); res.end(body); });
s.keepAliveTimeout = 65000;
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

// Each proxy copies the request head, adds X-Forwarded-For, relays status, headers and body.
const PROXIES: Record<string, string> = {
  'http-proxy': `
const http = require('node:http');
const httpProxy = require('http-proxy');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: { host: '127.0.0.1', port: UP }, agent, xfwd: true });
proxy.on('error', (e, req, res) => { res.statusCode = 502; res.end(); });
const s = http.createServer((req, res) => proxy.web(req, res));`,
  'http.request': `
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const s = http.createServer((req, res) => {
  const h = req.headers; h['x-forwarded-for'] = req.socket.remoteAddress;
  const u = http.request({ host: '127.0.0.1', port: UP, method: req.method, path: req.url, headers: h, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers); ur.pipe(res);
  });
  u.on('error', () => { res.statusCode = 502; res.end(); });
  req.pipe(u);
});`,
  undici: `
const http = require('node:http');
const { Pool } = require('undici');
const pool = new Pool('http://127.0.0.1:' + UP, { connections: 256, pipelining: 1 });
const s = http.createServer((req, res) => {
  const raw = req.rawHeaders; const h = [];
  for (let i = 0; i < raw.length; i += 2) { if (raw[i].toLowerCase() !== 'connection') h.push(raw[i], raw[i + 1]); }
  h.push('x-forwarded-for', req.socket.remoteAddress);
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.dispatch({ path: req.url, method: req.method, headers: h, body }, {
    onRequestStart() {},
    onResponseStart(c, status, headers) {
      const out = [];
      for (const k in headers) { if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue; const v = headers[k]; if (Array.isArray(v)) for (const x of v) out.push(k, x); else out.push(k, v); }
      res.writeHead(status, out);
    },
    onResponseData(c, chunk) { if (!res.write(chunk)) { c.pause(); res.once('drain', () => c.resume()); } },
    onResponseEnd() { res.end(); },
    onResponseError() { if (!res.headersSent) res.statusCode = 502; res.end(); },
  });
});`,
};

function startNode(code: string, children: ChildProcess[]): Promise<number> {
  const c = spawn(process.execPath, ['-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: ROOT,
  });
  children.push(c);
  return new Promise((resolve, reject) => {
    c.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    c.once('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
}

function rps(port: number, seconds: number): number {
  const out = execFileSync(
    'wrk',
    ['-t2', '-c32', `-d${seconds}s`, '--timeout', '5s', `http://127.0.0.1:${port}/`],
    {
      encoding: 'utf8',
      timeout: (seconds + 30) * 1000,
    },
  );
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
}

const children: ChildProcess[] = [];
try {
  const up = await startNode(UPSTREAM, children);
  const ports: [string, number][] = [];
  for (const [name, code] of Object.entries(PROXIES)) {
    const listen = `\ns.keepAliveTimeout = 65000; s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));`;
    ports.push([name, await startNode(code.replaceAll('UP', String(up)) + listen, children)]);
  }
  for (const [, port] of ports) rps(port, 2);
  const runs = new Map<string, number[]>(ports.map(([n]) => [n, []]));
  for (let r = 0; r < ROUNDS; r++)
    for (const [name, port] of ports) runs.get(name)!.push(rps(port, SECONDS));
  console.log(`single-process proxies, wrk -t2 -c32 -d${SECONDS}s, ${ROUNDS} interleaved round(s)`);
  for (const [name, xs] of runs) {
    const med = [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `${name.padEnd(13)} median ${med.toFixed(0).padStart(6)} rps   rounds: ${xs.map((x) => x.toFixed(0)).join(' ')}`,
    );
  }
} finally {
  for (const c of children) c.kill('SIGTERM');
}

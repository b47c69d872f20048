// Footprint: resident memory (RSS) of the daemon and of each data plane, idle and after 100
// deploys' worth of route switches, beside Dokku's resident front door (an idle nginx, the
// only thing Dokku keeps running) and the figure issue 20 started from (188 MB: the daemon
// and the node router's primary and two workers).
//   node bench/footprint.ts   [env: BENCH_DEPLOYS=100 BENCH_PLANES=node,haproxy]
// The daemon runs for real (`paas daemon --router <plane>`, empty data dir); the deploys are
// the data plane's half of a deploy (a switch to two new backends, then a request), driven
// through a second DataPlane handle that adopts the daemon's plane, bounded in count.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDataPlane, type DataPlane } from '../src/router/index.ts';

const DEPLOYS = Number(process.env.BENCH_DEPLOYS ?? 100);
const PLANES = (process.env.BENCH_PLANES ?? 'node,haproxy').split(',');
const BIN = join(import.meta.dirname, '..', 'bin', 'paas');
const OLD_MB = 188;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** `pid` and every descendant (the router's cluster workers, haproxy's worker). */
function tree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, p] of parent) if (p === out[i]) out.push(c);
  return out;
}

const mb = (kb: number): string => (kb / 1024).toFixed(1);
const treeKb = (pid: number): number => tree(pid).reduce((n, p) => n + rssKb(p), 0);

function upstream(name: string): Promise<{ port: number; close(): void }> {
  const s = http.createServer((_req, res) => res.end(name));
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () =>
      resolve({ port: (s.address() as net.AddressInfo).port, close: () => s.close() }),
    ),
  );
}

function get(port: number): Promise<number> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, headers: { host: 'app.paas.test' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', () => resolve(0));
  });
}

async function nginxIdleKb(): Promise<number> {
  const tmp = mkdtempSync(join(tmpdir(), 'paas-bench-nginx-'));
  const port = await freePort();
  writeFileSync(
    join(tmp, 'nginx.conf'),
    `worker_processes auto; pid ${tmp}/nginx.pid; error_log ${tmp}/error.log; daemon off;
events { worker_connections 1024; }
http { access_log ${tmp}/access.log; server { listen 127.0.0.1:${port}; location / { return 200; } } }
`,
  );
  const c = spawn('nginx', ['-c', join(tmp, 'nginx.conf'), '-p', tmp], { stdio: 'ignore' });
  await sleep(1500);
  const kb = treeKb(c.pid!);
  c.kill('SIGTERM');
  await sleep(300);
  rmSync(tmp, { recursive: true, force: true });
  return kb;
}

async function measure(kind: string): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), `paas-bench-footprint-${kind}-`));
  const apiPort = await freePort();
  const httpPort = await freePort();
  let daemon: ChildProcess | undefined;
  let plane: DataPlane | undefined;
  try {
    daemon = spawn(
      BIN,
      [
        'daemon',
        '--data-dir',
        dataDir,
        '--api-port',
        String(apiPort),
        '--api-host',
        '127.0.0.1',
        '--http-port',
        String(httpPort),
        '--domain',
        'paas.test',
        '--router',
        kind,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (daemon.exitCode !== null) throw new Error(`daemon exited ${daemon.exitCode}`);
      const tokenFile = join(dataDir, 'admin-token');
      if (existsSync(tokenFile)) {
        const token = readFileSync(tokenFile, 'utf8').trim();
        const ok = await fetch(`http://127.0.0.1:${apiPort}/api/ping`, {
          headers: { authorization: `Bearer ${token}` },
        }).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
      }
      if (Date.now() > deadline) throw new Error('daemon did not come up');
      await sleep(200);
    }
    plane = createDataPlane(kind, { dataDir, httpPort, domain: 'paas.test' });
    const { pid } = await plane.connect();
    await sleep(3000); // start-up garbage collected, timers settled
    global.gc?.();
    const idle = { daemon: rssKb(daemon.pid!), plane: treeKb(pid) };

    const ups = await Promise.all(Array.from({ length: 4 }, (_, i) => upstream(`u${i}`)));
    const until = Date.now() + 5 * 60_000;
    let failed = 0;
    for (let i = 0; i < DEPLOYS && Date.now() < until; i++) {
      const pair = i % 2 === 0 ? ups.slice(0, 2) : ups.slice(2);
      await plane.switch(
        'app',
        pair.map((u, n) => ({ host: '127.0.0.1', port: u.port, id: `web.${n + 1}@v${i}` })),
      );
      if ((await get(httpPort)) !== 200) failed++;
    }
    await sleep(2000);
    const after = { daemon: rssKb(daemon.pid!), plane: treeKb(pid) };
    for (const u of ups) u.close();
    return [
      kind,
      `${mb(idle.daemon)} + ${mb(idle.plane)} (${tree(pid).length} proc) = ${mb(idle.daemon + idle.plane)}`,
      `${mb(after.daemon)} + ${mb(after.plane)} = ${mb(after.daemon + after.plane)}`,
      String(failed),
    ];
  } finally {
    await plane?.stop().catch(() => {});
    plane?.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const rows: string[][] = [];
for (const kind of PLANES) rows.push(await measure(kind));
const nginx = await nginxIdleKb();
console.log(`RSS in MB (daemon + data plane), idle and after ${DEPLOYS} deploys' switches`);
console.log('plane     idle                                   after deploys            failed');
for (const r of rows)
  console.log(`${r[0]!.padEnd(9)} ${r[1]!.padEnd(38)} ${r[2]!.padEnd(24)} ${r[3]}`);
console.log(`Dokku's resident front door: nginx idle ${mb(nginx)} MB (master + workers)`);
console.log(`old figure (issue 20): ${OLD_MB} MB for the daemon and the node router's 3 processes`);

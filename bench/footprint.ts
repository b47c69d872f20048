// Footprint: resident memory (RSS) of the daemon and of each data plane, idle and after 100
// deploys, beside Dokku's resident front door (an idle nginx, the only thing Dokku keeps
// running) and the figure issue 20 started from (188 MB: the daemon and the node router's
// primary and two workers).
//   node bench/footprint.ts   [env: BENCH_DEPLOYS=100 BENCH_PLANES=haproxy,node]
// The daemon runs for real (`bin/paas daemon --router <plane>` through the e2e harness, with
// bin/paas's memory flags). Idle is measured twice: on a first start (empty data dir: the
// SSH host key and haproxy's pages are made then, one-off work that loads ssh2 and
// handlebars) and after a restart that adopts the running plane (the steady state of a box:
// every upgrade or reboot is one). The deploys are real: one git push of the busybox web
// fixture, then config:set releases (new release, start, health check, switch, drain, stop
// the old process), every tenth a git push with a code change (a build); bounded in count
// and time. Open file descriptors are counted beside RSS, to see handles that grow per deploy.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appRepo, cli, get, push, startPaas, type Paas } from '../test/e2e/harness.ts';

const DEPLOYS = Number(process.env.BENCH_DEPLOYS ?? 100);
const PLANES = (process.env.BENCH_PLANES ?? 'haproxy,node').split(',');
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

const fds = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
};

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

/** The data plane's top process: the node router's primary, or haproxy. */
function planePid(p: Paas): number {
  for (const f of ['router/router.pid', 'router/haproxy/haproxy.pid'])
    try {
      const pid = Number(readFileSync(join(p.dataDir, f), 'utf8'));
      if (pid > 0) return pid;
    } catch {
      // the other plane
    }
  throw new Error('no data plane pid file');
}

interface Sample {
  daemon: number;
  /** The daemon's file-backed share: node's binary and libraries, shared with other processes. */
  daemonFile: number;
  plane: number;
  procs: number;
  fds: number;
}

function rssFileKb(pid: number): number {
  try {
    const m = /^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function sample(p: Paas): Promise<Sample> {
  await sleep(5000); // start-up or deploy garbage collected, timers settled
  const pid = planePid(p);
  return {
    daemon: rssKb(p.daemon.pid!),
    daemonFile: rssFileKb(p.daemon.pid!),
    plane: treeKb(pid),
    procs: tree(pid).length,
    fds: fds(p.daemon.pid!),
  };
}

/**
 * A full garbage collection in the daemon, through the inspector that SIGUSR1 opens (on
 * 127.0.0.1:9229; this daemon is the bench's and is stopped after), and its heap in use then.
 * RSS after many deploys holds garbage V8 has not collected yet; what a GC leaves is what the
 * daemon keeps.
 */
async function collectGarbage(pid: number): Promise<{ heapUsedKb: number }> {
  process.kill(pid, 'SIGUSR1');
  let url: string | undefined;
  for (let i = 0; i < 50 && url === undefined; i++) {
    await sleep(100);
    url = await fetch('http://127.0.0.1:9229/json/list')
      .then((r) => r.json() as Promise<{ webSocketDebuggerUrl: string }[]>)
      .then((l) => l[0]?.webSocketDebuggerUrl)
      .catch(() => undefined);
  }
  if (url === undefined) throw new Error('the daemon opened no inspector');
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let id = 0;
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve) => {
      const n = ++id;
      ws.addEventListener('message', function on(e) {
        const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown };
        if (m.id !== n) return;
        ws.removeEventListener('message', on);
        resolve(m.result);
      });
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const r = (await call('Runtime.evaluate', {
    expression: 'process.memoryUsage().heapUsed',
    returnByValue: true,
  })) as { result: { value: number } };
  ws.close();
  return { heapUsedKb: Math.round(r.result.value / 1024) };
}

async function measure(kind: string): Promise<string[]> {
  process.env.PAAS_E2E_ROUTER = kind;
  const p = await startPaas();
  const app = appRepo('busybox-web');
  try {
    const first = await sample(p);
    await p.stop();
    await p.start();
    const idle = await sample(p);

    const until = Date.now() + 15 * 60_000;
    let failed = 0;
    let done = 0;
    for (let i = 0; i < DEPLOYS && Date.now() < until; i++) {
      let ok: boolean;
      if (i % 10 === 0) {
        app.write('www/index.html', `<p>release ${i}</p>\n`);
        app.commit(`release ${i}`);
        ok = (await push(p, app.dir, 'app')).code === 0;
      } else {
        ok = (await cli(p, ['config:set', 'app', `GREETING=v${i}`])).code === 0;
      }
      if (!ok || (await get(p, 'app', '/')).status !== 200) failed++;
      done++;
    }
    const after = await sample(p);
    await sleep(25_000);
    const later = await sample(p);
    const gc = await collectGarbage(p.daemon.pid!);
    const collected = await sample(p);
    const row = (x: Sample): string =>
      `${mb(x.daemon)} + ${mb(x.plane)} = ${mb(x.daemon + x.plane)}`;
    return [
      kind,
      `${row(first)} (${first.procs} proc)`,
      `${row(idle)} (daemon file-backed ${mb(idle.daemonFile)})`,
      `${row(after)}; 30 s later ${mb(later.daemon)}; after a full GC ${mb(collected.daemon)} (heap ${mb(gc.heapUsedKb)})`,
      `${idle.fds} → ${after.fds} → ${later.fds}`,
      `${done}/${failed}`,
    ];
  } finally {
    await p.cleanup();
    rmSync(app.dir, { recursive: true, force: true });
  }
}

const rows: string[][] = [];
for (const kind of PLANES) rows.push(await measure(kind));
const nginx = await nginxIdleKb();
console.log(
  `RSS in MB, daemon + data plane (all its processes), idle and after ${DEPLOYS} deploys (${new Date().toISOString()})`,
);
const cols = [9, 30, 50, 80, 16, 10];
const line = (r: string[]): void =>
  console.log(
    r
      .map((c, i) => c.padEnd(cols[i]!))
      .join(' ')
      .trimEnd(),
  );
line([
  'plane',
  'idle, first start',
  'idle, restarted',
  'after deploys',
  'daemon fds',
  'deploys/failed',
]);
for (const r of rows) line(r);
console.log(`Dokku's resident front door: nginx idle ${mb(nginx)} MB (master + workers), same run`);
console.log(`old figure (issue 20): ${OLD_MB} MB for the daemon and the node router's 3 processes`);

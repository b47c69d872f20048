// End-to-end harness: a real `paas daemon` process (which starts the real router) on a
// temporary data dir with the busybox base image imported, the real `paas` CLI, real git
// pushes and HTTP requests through the router. Nothing is mocked.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openStore } from '../../src/registry/index.ts';
import { accessLogPath, DEFAULT_PLANE } from '../../src/router/index.ts';
import { createRuntime } from '../../src/runtime/index.ts';
import { freePort, freePorts, REPO, testRootfs } from '../helpers/host.ts';

export { freePort };

export const DOMAIN = 'paas.test';
export const FIXTURES = join(REPO, 'test', 'fixtures', 'apps');
export const BUILDPACK_FIXTURES = join(REPO, 'test', 'fixtures', 'buildpacks');
export const BIN = join(REPO, 'bin', 'paas');

export interface Paas {
  dataDir: string;
  apiPort: number;
  httpPort: number;
  httpsPort: number;
  /** The daemon's SSH server for git (--ssh-port). */
  sshPort: number;
  token: string;
  daemon: ChildProcess;
  daemonLog: () => string;
  start(): Promise<void>;
  kill9(): void;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

/** `prepare` runs on the data dir before the daemon first starts (more base images…). */
/** The data plane e2e daemons run: PAAS_E2E_ROUTER, else the default. */
export const E2E_PLANE = process.env.PAAS_E2E_ROUTER ?? DEFAULT_PLANE;

export async function startPaas(
  opts: {
    maxPushSize?: string;
    /** The router's HTTP port, when a peer must know it first (pebble's HTTP-01 validation). */
    httpPort?: number;
    /** More `paas daemon` flags (--build-memory 64m …). */
    daemonArgs?: string[];
    prepare?: (dataDir: string) => Promise<void>;
  } = {},
): Promise<Paas> {
  const dataDir = mkdtempSync(join(tmpdir(), 'paas-e2e-'));
  const store = await openStore(dataDir);
  await store.importRootfs(testRootfs(), 'library/busybox:latest', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
  await opts.prepare?.(dataDir);
  // Distinct ports held at once: one free port asked for four times in a row can come back
  // twice (a router that then failed to bind its HTTPS port on its HTTP one). Never the
  // defaults 443 and 2222: daemons of parallel tests (and a real one) would fight over them.
  const free = (await freePorts(4)).filter((port) => port !== opts.httpPort);
  const [apiPort, httpsPort, sshPort] = free as [number, number, number];
  const httpPort = opts.httpPort ?? free[3]!;
  let out = '';
  const p: Paas = {
    dataDir,
    apiPort,
    httpPort,
    httpsPort,
    sshPort,
    token: '',
    daemon: null as unknown as ChildProcess,
    daemonLog: () => out,
    async start() {
      const args = [
        'daemon',
        '--data-dir',
        dataDir,
        '--api-port',
        String(apiPort),
        '--api-host',
        '127.0.0.1',
        '--http-port',
        String(httpPort),
        '--https-port',
        String(httpsPort),
        '--domain',
        DOMAIN,
        '--runtime',
        'native',
        '--ssh-port',
        String(sshPort),
      ];
      if (opts.maxPushSize !== undefined) args.push('--max-push-size', opts.maxPushSize);
      // The data plane under test (PAAS_E2E_ROUTER=node runs an e2e file on the node plane).
      if (process.env.PAAS_E2E_ROUTER) args.push('--router', process.env.PAAS_E2E_ROUTER);
      args.push(...(opts.daemonArgs ?? []));
      p.daemon = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      p.daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      // A hang guard: under a CPU hog the router and bridge steps alone took over 30 s.
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (p.daemon.exitCode !== null)
          throw new Error(`paas daemon exited ${p.daemon.exitCode}:\n${out}`);
        if (existsSync(join(dataDir, 'admin-token'))) {
          p.token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
          try {
            const r = await fetch(`http://127.0.0.1:${apiPort}/api/ping`, {
              headers: { authorization: `Bearer ${p.token}` },
            });
            if (r.ok) return;
          } catch {
            // not listening yet
          }
        }
        if (Date.now() > deadline) throw new Error(`paas daemon did not come up:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill9() {
      p.daemon.kill('SIGKILL');
    },
    async stop() {
      if (p.daemon.exitCode !== null || p.daemon.signalCode !== null) return;
      const exited = new Promise((r) => p.daemon.once('exit', r));
      p.daemon.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (p.daemon.exitCode === null) p.daemon.kill('SIGKILL');
    },
    async cleanup() {
      await p.stop();
      // The router and the app containers outlive the daemon by design: stop them here.
      for (const pidFile of ['router.pid', 'haproxy/haproxy.pid'])
        try {
          const pid = Number(readFileSync(join(dataDir, 'router', pidFile), 'utf8'));
          if (pid > 0) process.kill(pid, 'SIGTERM');
        } catch {
          // not running
        }
      const rt = createRuntime('native', { dataDir });
      for (const c of await rt.list())
        await rt.remove(c.id, { force: true }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      // A daemon killed mid-build leaves the builder's view mounts behind (see the report on
      // builder recovery); unmount what is left under the data dir, deepest first.
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4] ?? '')
        .filter((m) => m.startsWith(`${dataDir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await p.start();
  return p;
}

/**
 * A daemon whose store also holds the debian and node base images (provision/base-images):
 * cached in /var/cache/paas/base, the import takes seconds; a first build, minutes.
 */
export function startPaasWithBaseImages(): Promise<Paas> {
  return startPaas({
    prepare: async (dataDir) => {
      await promisify(execFile)(
        join(REPO, 'provision', 'base-images'),
        ['--data-dir', dataDir, '--only', 'debian,node', '--quiet'],
        { timeout: 40 * 60_000, maxBuffer: 64 * 1024 * 1024 },
      );
    },
  });
}

/** Runs the real CLI against the daemon. */
export function cli(
  p: Paas,
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(BIN, args, {
      env: {
        ...process.env,
        PAAS_API: `http://127.0.0.1:${p.apiPort}`,
        PAAS_TOKEN: p.token,
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) c.stdin.end(input);
  });
}

/** A git work tree with a copy of a fixture app (a name under `from`), committed on main. */
export function appRepo(
  fixture: string,
  into?: string,
  from = FIXTURES,
): { dir: string; commit(msg: string): string; write(path: string, text: string): void } {
  const dir = into ?? mkdtempSync(join(tmpdir(), `paas-app-${fixture}-`));
  mkdirSync(dir, { recursive: true });
  cpSync(join(from, fixture), dir, { recursive: true });
  const git = (...a: string[]) =>
    execFileSync('git', a, { cwd: dir, stdio: 'pipe' }).toString().trim();
  if (!existsSync(join(dir, '.git'))) {
    git('init', '-q', '-b', 'main');
    git('config', 'user.email', 'dev@example.com');
    git('config', 'user.name', 'Dev');
  }
  const r = {
    dir,
    write(path: string, text: string) {
      writeFileSync(join(dir, path), text);
    },
    commit(msg: string) {
      git('add', '-A');
      git('commit', '-q', '--allow-empty', '-m', msg);
      return git('rev-parse', 'HEAD');
    },
  };
  r.commit('initial');
  return r;
}

export interface PushResult {
  code: number;
  stderr: string;
  /** When each `remote:` line arrived, ms since the push began. */
  lineTimes: { at: number; line: string }[];
}

export function push(
  p: Paas,
  dir: string,
  app: string,
  opts: { ref?: string; token?: string; force?: boolean; onLine?: (line: string) => void } = {},
): Promise<PushResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const args = [
      'push',
      `http://paas:${opts.token ?? p.token}@127.0.0.1:${p.apiPort}/${app}.git`,
      opts.ref ?? 'main',
    ];
    if (opts.force === true) args.push('--force');
    const c = spawn('git', args, { cwd: dir, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } });
    let stderr = '';
    const lineTimes: { at: number; line: string }[] = [];
    let partial = '';
    c.stderr.on('data', (d: Buffer) => {
      const s = d.toString();
      stderr += s;
      partial += s;
      const lines = partial.split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('remote:')) continue;
        lineTimes.push({ at: Date.now() - t0, line });
        opts.onLine?.(line);
      }
    });
    c.on('close', (code) => resolve({ code: code ?? -1, stderr, lineTimes }));
  });
}

/** GET through the router with the app's Host header (status 0: the connection failed). */
export function get(
  p: Paas,
  app: string,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: p.httpPort,
        path,
        headers: { ...headers, host: `${app}.${DOMAIN}` },
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (e) => resolve({ status: 0, body: String(e) }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export function remoteLines(r: PushResult): string[] {
  return r.stderr
    .split(/\r?\n|\r/)
    .filter((l) => l.startsWith('remote:'))
    .map((l) => l.replace(/^remote:\s?/, '').trimEnd());
}

/**
 * GETs through the router back to back until `end()` (bounded: 3000 requests, 90 s), each
 * with its own request id. `minRequests`: `end()` first waits (at most 15 s more) until that
 * many were made, so "no failure" means something on a slow box. On failures `end()` prints
 * the router's access-log line of each failed request and the app's log.
 */
export function requestLoop(p: Paas, app: string, path = '/', opts: { minRequests?: number } = {}) {
  let stop = false;
  const failures: string[] = [];
  const bodies = new Map<string, number>();
  let count = 0;
  const t0 = Date.now();
  const done = (async () => {
    while (!stop && count < 3000 && Date.now() - t0 < 90_000) {
      const sent = new Date().toISOString();
      const id = `loop-${app}-${count}`;
      const r = await get(p, app, path, { 'x-request-id': id });
      count++;
      if (r.status !== 200)
        failures.push(`${r.status} ${r.body.slice(0, 120)} (sent ${sent}, request id ${id})`);
      else bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1);
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  return {
    failures,
    bodies,
    get count() {
      return count;
    },
    async end() {
      const enough = Date.now() + 15_000;
      while (count < (opts.minRequests ?? 0) && Date.now() < enough)
        await new Promise((r) => setTimeout(r, 50));
      stop = true;
      await done;
      if (failures.length > 0) await explainFailures(p, app, failures);
    },
  };
}

async function explainFailures(p: Paas, app: string, failures: string[]): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500)); // the router flushes its access log each second
  const log = accessLogPath(p.dataDir);
  const access = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
  for (const f of failures) {
    const id = /request id (\S+)\)/.exec(f)?.[1];
    console.error(
      `failed: ${f}\n  router: ${access.filter((l) => id !== undefined && l.includes(`"${id}"`)).join('\n  ') || '(no access log line)'}`,
    );
  }
  const appLog = (await cli(p, ['logs', app, '-n', '2000'])).stdout;
  console.error(
    `${app} log:\n${appLog
      .split('\n')
      .filter((l) => !l.includes('router['))
      .slice(-150)
      .join('\n')}`,
  );
}

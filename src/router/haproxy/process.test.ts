// The haproxy plane as the daemon runs it: one process, started detached, adopted by a second daemon
// (a new HaproxyPlane on the same data dir), a deploy's switch changes servers over the
// runtime socket without a reload, so does a new app (it takes a spare backend), running out
// of spares is a seamless reload that refuses nothing under load, and after kill -9 the next
// start serves the persisted table by itself.
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCa } from '../../../test/helpers/certs.ts';
import { alive, freePort } from '../../../test/helpers/host.ts';
import { request, requestLoop, until, upstream, type Upstream } from '../testing.ts';
import { MAX_CONNECTIONS, SPARE_BACKENDS } from './config.ts';
import { cli } from './runtime.ts';
import { haproxyPaths, HaproxyPlane } from './plane.ts';

let dataDir: string;
let port: number;
let one: Upstream;
let two: Upstream;
const planes: HaproxyPlane[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'paas-haproxy-proc-'));
  port = await freePort();
  one = await upstream('one');
  two = await upstream('two');
});

afterAll(async () => {
  for (const p of planes) await p.stop().catch(() => {});
  await one?.close();
  await two?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const plane = (): HaproxyPlane => {
  const p = new HaproxyPlane({ dataDir, httpPort: port, host: '127.0.0.1', domain: 'paas.test' });
  planes.push(p);
  return p;
};
const nameOf = (body: string): string => (JSON.parse(body) as { name: string }).name;
const workerPid = async (): Promise<number> =>
  Number(/^Pid: (\d+)/m.exec(await cli(haproxyPaths(dataDir).admin, ['show info']))?.[1]);

/** The processes whose parent is `pid`. */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe('haproxy plane process', () => {
  it('starts detached, is adopted, switches and adds an app without reloading, reloads seamlessly past its spares, and survives kill -9', async () => {
    const first = plane();
    const started = await first.connect();
    expect(started.started).toBe(true);
    const master = started.pid;
    expect(Number(readFileSync(haproxyPaths(dataDir).pid, 'utf8'))).toBe(master);
    // One process: no master beside the one serving (bench/footprint: 12.5 MB).
    expect(await workerPid()).toBe(master);
    expect(children(master)).toEqual([]);
    // Its connection limit is ours, not derived from the open-files limit (memory held up
    // front for each allowed connection).
    expect(await cli(haproxyPaths(dataDir).admin, ['show info'])).toMatch(
      new RegExp(`^Maxconn: ${MAX_CONNECTIONS}$`, 'm'),
    );
    // Whoever can write to this socket can re-point every app: owner only. The admin link
    // names the serving generation's socket.
    const admin = haproxyPaths(dataDir).admin;
    expect(statSync(admin).mode & 0o777).toBe(0o600);
    expect(readlinkSync(admin)).toMatch(/^admin-\d+\.sock$/);

    await first.setRoutes({
      domain: 'paas.test',
      apps: {
        app: { domains: ['app.example.com'], backends: [{ host: '127.0.0.1', port: one.port }] },
      },
    });
    expect(nameOf((await request(port, 'app.example.com')).body)).toBe('one');

    // A second daemon adopts it: no new process.
    const second = plane();
    expect(await second.connect()).toEqual({ started: false, pid: master });
    expect((await second.health()).pid).toBe(master);

    // A deploy's switch: runtime socket only, the worker is the same process.
    const worker = await workerPid();
    expect(
      await second.switch('app', [{ host: '127.0.0.1', port: two.port, id: 'web.1' }]),
    ).toEqual({ drained: true });
    for (let i = 0; i < 10; i++)
      expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('two');
    expect(await workerPid()).toBe(worker);
    const load = await second.load();
    expect(load.filter((l) => l.active)).toEqual([
      expect.objectContaining({ app: 'app', upstream: `127.0.0.1:${two.port}`, id: 'web.1' }),
    ]);
    // A domain change: the host map at run time, still no reload.
    await second.setRoutes({
      domain: 'paas.test',
      apps: {
        app: {
          domains: ['app.example.com', '*.example.org'],
          backends: [{ host: '127.0.0.1', port: two.port }],
        },
      },
    });
    expect(nameOf((await request(port, 'shop.example.org')).body)).toBe('two');
    expect(await workerPid()).toBe(worker);

    // A new app takes a spare backend: still no reload.
    const two2 = {
      app: {
        domains: ['app.example.com', '*.example.org'],
        backends: [{ host: '127.0.0.1', port: two.port }],
      },
      other: { domains: [], backends: [{ host: '127.0.0.1', port: one.port }] },
    };
    await second.setRoutes({ domain: 'paas.test', apps: two2 });
    expect(nameOf((await request(port, 'other.paas.test')).body)).toBe('one');
    expect(await workerPid()).toBe(worker);

    // More new apps than spares left: a reload, under a bounded request loop that must see
    // no refused connection and no failed request.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const load8 = requestLoop(port, 'app.paas.test', Array(8).fill(agent), {
      max: 20_000,
      ms: 15_000,
    });
    await until(() => load8.ok > 200, 10_000, 'load before the reload');
    const many = Object.fromEntries(
      Array.from({ length: SPARE_BACKENDS }, (_, i) => [
        `extra${i}`,
        { domains: [], backends: [{ host: '127.0.0.1', port: one.port }] },
      ]),
    );
    await second.setRoutes({ domain: 'paas.test', apps: { ...two2, ...many } });
    const after = load8.ok;
    await until(() => load8.ok > after + 200, 10_000, 'load after the reload');
    const { failures } = await load8.stop();
    agent.destroy();
    expect(failures).toEqual([]);
    expect(await workerPid()).not.toBe(worker);
    // The new process is the one the link and the pid file name; the old one's socket is
    // gone, and the old process stops once its connections are done.
    const reloaded = await workerPid();
    expect(Number(readFileSync(haproxyPaths(dataDir).pid, 'utf8'))).toBe(reloaded);
    expect(children(reloaded)).toEqual([]);
    expect(
      readdirSync(haproxyPaths(dataDir).dir)
        .filter((f) => f.endsWith('.sock'))
        .sort(),
    ).toEqual([readlinkSync(admin), 'admin.sock', 'handoff.sock']);
    await until(() => !alive(worker), 10_000, 'the old haproxy to exit');
    expect(nameOf((await request(port, 'other.paas.test')).body)).toBe('one');
    expect(nameOf((await request(port, `extra${SPARE_BACKENDS - 1}.paas.test`)).body)).toBe('one');
    // The reload laid the backends out afresh: spares again for the next new apps.
    const worker2 = await workerPid();
    await second.setRoutes({
      domain: 'paas.test',
      apps: {
        ...two2,
        ...many,
        late: { domains: [], backends: [{ host: '127.0.0.1', port: two.port }] },
      },
    });
    expect(nameOf((await request(port, 'late.paas.test')).body)).toBe('two');
    expect(await workerPid()).toBe(worker2);

    // Two apps switching at once: each change is made on the table the other left.
    await Promise.all([
      second.switch('app', [{ host: '127.0.0.1', port: one.port }]),
      second.switch('other', [{ host: '127.0.0.1', port: two.port }]),
    ]);
    expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('one');
    expect(nameOf((await request(port, 'other.paas.test')).body)).toBe('two');
    await Promise.all([
      second.switch('app', [{ host: '127.0.0.1', port: two.port }]),
      second.switch('other', [{ host: '127.0.0.1', port: one.port }]),
    ]);

    // A daemon killed in a reload after starting the new haproxy and before pointing the
    // link at it: the next one adopts the new haproxy (the configuration on disk's), not the
    // stopping one the link names.
    const serving = await workerPid();
    const link = readlinkSync(admin);
    rmSync(admin);
    symlinkSync('admin-0.sock', admin);
    const fourth = plane();
    expect(await fourth.connect()).toEqual({ started: false, pid: serving });
    expect(readlinkSync(admin)).toBe(link);
    expect(lstatSync(admin).isSymbolicLink()).toBe(true);

    // kill -9: the next start serves the persisted table before anyone publishes one.
    process.kill(serving, 'SIGKILL');
    await until(
      async () =>
        await request(port, 'app.paas.test').then(
          () => false,
          () => true,
        ),
      10_000,
      'port to close',
    );
    const third = plane();
    const again = await third.connect();
    expect(again.started).toBe(true);
    expect(again.pid).not.toBe(serving);
    expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('two');
    expect(nameOf((await request(port, 'shop.example.org')).body)).toBe('two');
    expect(nameOf((await request(port, 'other.paas.test')).body)).toBe('one');
    expect(nameOf((await request(port, 'late.paas.test')).body)).toBe('two');

    await third.stop();
    await until(() => !alive(again.pid), 10_000, 'haproxy to exit');
  });

  it('stop lets a request in flight finish: a stopping haproxy is watched through /proc, its runtime socket being closed', async () => {
    const order: string[] = [];
    const slow = await upstream('slow', (_req, res) => {
      setTimeout(() => {
        order.push('app answered');
        res.end('late\n');
      }, 1500);
    });
    const p = plane();
    try {
      await p.connect();
      await p.setRoutes({
        domain: 'paas.test',
        apps: { slow: { domains: [], backends: [{ host: '127.0.0.1', port: slow.port }] } },
      });
      const pid = await workerPid();
      const answer = request(port, 'slow.paas.test');
      await until(() => slow.seen.length === 1, 10_000, 'the request to reach the app');
      await p.stop();
      order.push(alive(pid) ? 'stopped, haproxy alive' : 'stopped');
      const r = await answer;
      expect([r.status, r.body]).toEqual([200, 'late\n']);
      expect(order).toEqual(['app answered', 'stopped']);
    } finally {
      await slow.close();
    }
  });
});

/** The subject CN a fresh handshake with `servername` gets, or the handshake's error. */
function cnOf(p: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: p, servername, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.once('error', (e) => resolve(`error: ${e.message}`));
  });
}

describe('haproxy plane HTTPS across daemons', () => {
  it('an adopted haproxy started without HTTPS gets its listener by a seamless reload; its certificates come back after kill -9 before any push', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-haproxy-tls-'));
    const httpPort = await freePort();
    const make = (httpsPort?: number): HaproxyPlane => {
      const p = new HaproxyPlane({
        dataDir: dir,
        httpPort,
        ...(httpsPort === undefined ? {} : { httpsPort }),
        host: '127.0.0.1',
        domain: 'paas.test',
      });
      planes.push(p);
      return p;
    };
    const admin = haproxyPaths(dir).admin;
    const worker = async (): Promise<number> =>
      Number(/^Pid: (\d+)/m.exec(await cli(admin, ['show info']))?.[1]);
    try {
      const before = make();
      const started = await before.connect();
      await before.setRoutes({
        domain: 'paas.test',
        apps: {
          app: { domains: ['app.example.com'], backends: [{ host: '127.0.0.1', port: one.port }] },
        },
      });
      expect((await before.health()).httpsPort).toBeUndefined();
      const w0 = await worker();

      // The next daemon asks for HTTPS: a new haproxy with the listener, taking the HTTP one
      // over from the old.
      const after = make(0);
      const adopted = await after.connect();
      expect(adopted.started).toBe(false);
      expect(adopted.pid).not.toBe(started.pid);
      const httpsPort = (await after.health()).httpsPort!;
      expect(httpsPort).toBeGreaterThan(0);
      expect(await worker()).not.toBe(w0);
      const leaf = TestCa.root(join(dir, 'ca')).leaf(['app.example.com']);
      await after.setCerts({
        hosts: { 'app.example.com': { cert: leaf.chain, key: leaf.key } },
        default: null,
      });
      expect(await cnOf(httpsPort, 'app.example.com')).toBe('app.example.com');
      const token = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
      const keyAuthz = `${token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;
      await after.addChallenge(token, keyAuthz);
      const ch = await request(httpPort, 'app.example.com', {
        path: `/.well-known/acme-challenge/${token}`,
      });
      expect([ch.status, ch.body]).toEqual([200, keyAuthz]);

      // kill -9: the next start serves the certificate from the plane's own files, on the
      // same HTTPS port, before any daemon pushed anything.
      process.kill(adopted.pid, 'SIGKILL');
      await until(
        async () => (await cnOf(httpsPort, 'app.example.com')).startsWith('error'),
        10_000,
        'the HTTPS port to close',
      );
      const third = make(0);
      expect((await third.connect()).started).toBe(true);
      expect((await third.health()).httpsPort).toBe(httpsPort);
      expect(await cnOf(httpsPort, 'app.example.com')).toBe('app.example.com');
      expect(await cnOf(httpsPort, 'other.example.com')).toMatch(/^error/);
      await third.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('haproxy plane reload and kept-alive connections', () => {
  it("a kept-alive connection's next request after a reload is answered with the new table: a new app is found, headers are set once, one access line", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-haproxy-handoff-'));
    const httpPort = await freePort();
    const p = new HaproxyPlane({
      dataDir: dir,
      httpPort,
      httpsPort: 0,
      host: '127.0.0.1',
      domain: 'paas.test',
    });
    planes.push(p);
    const admin = haproxyPaths(dir).admin;
    const worker = async (): Promise<number> =>
      Number(/^Pid: (\d+)/m.exec(await cli(admin, ['show info']))?.[1]);
    const plain = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const secure = new https.Agent({ keepAlive: true, maxSockets: 1 });
    // One SNI name for every request: the agent keeps a connection per name.
    const SNI = 'paas.test';
    try {
      await p.connect();
      const httpsPort = (await p.health()).httpsPort!;
      const leaf = TestCa.root(join(dir, 'ca')).leaf(['paas.test']);
      await p.setCerts({
        hosts: { 'paas.test': { cert: leaf.chain, key: leaf.key } },
        default: null,
      });
      const app = { domains: [], backends: [{ host: '127.0.0.1', port: one.port }] };
      await p.setRoutes({ domain: 'paas.test', apps: { app } });
      expect((await request(httpPort, 'app.paas.test', { agent: plain })).status).toBe(200);
      expect(
        (await request(httpsPort, 'app.paas.test', { agent: secure, servername: SNI })).status,
      ).toBe(200);
      const w0 = await worker();

      // More new apps than spares: a reload, while both connections are idle and kept.
      const apps = Object.fromEntries(
        Array.from({ length: SPARE_BACKENDS + 1 }, (_, i) => [
          `new${i}`,
          { domains: [], backends: [{ host: '127.0.0.1', port: two.port }] },
        ]),
      );
      await p.setRoutes({ domain: 'paas.test', apps: { app, ...apps } });
      expect(await worker()).not.toBe(w0);

      const newest = `new${SPARE_BACKENDS}.paas.test`;
      const rid = 'handoff-test-request-1';
      const r = await request(httpPort, newest, { agent: plain, headers: { 'x-request-id': rid } });
      expect(r.reused).toBe(true);
      expect(r.status, r.body).toBe(200);
      const seen = JSON.parse(r.body) as { name: string; headers: Record<string, string> };
      expect(seen.name).toBe('two');
      expect(seen.headers['x-request-id']).toBe(rid);
      expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen.headers['x-forwarded-proto']).toBe('http');
      expect(seen.headers['x-forwarded-port']).toBe(String(httpPort));

      const s = await request(httpsPort, newest, {
        agent: secure,
        servername: SNI,
        headers: { 'x-request-id': `${rid}-tls` },
      });
      expect(s.reused).toBe(true);
      expect(s.status, s.body).toBe(200);
      const tlsSeen = JSON.parse(s.body) as { name: string; headers: Record<string, string> };
      expect(tlsSeen.name).toBe('two');
      expect(tlsSeen.headers['x-forwarded-proto']).toBe('https');
      expect(tlsSeen.headers['x-forwarded-port']).toBe(String(httpsPort));
      expect(tlsSeen.headers['x-forwarded-for']).toBe('127.0.0.1');

      // One access line each, from the process that served it, with the client's address.
      await until(
        () => readFileSync(p.accessLogPath, 'utf8').includes(`${rid}-tls`),
        10_000,
        'the access line',
      );
      const lines = readFileSync(p.accessLogPath, 'utf8')
        .split('\n')
        .filter((l) => l.includes(rid))
        .map((l) => JSON.parse(l) as { status: number; app: string; remote: string });
      expect(lines.map((l) => [l.status, l.app, l.remote])).toEqual([
        [200, `new${SPARE_BACKENDS}`, '127.0.0.1'],
        [200, `new${SPARE_BACKENDS}`, '127.0.0.1'],
      ]);
    } finally {
      await p.stop();
      plain.destroy();
      secure.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('haproxy plane upgrade', () => {
  it('a master-worker haproxy an older paas started is adopted and replaced by one process, seamlessly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-haproxy-legacy-'));
    const httpPort = await freePort();
    const paths = haproxyPaths(dir);
    const make = (): HaproxyPlane => {
      const p = new HaproxyPlane({
        dataDir: dir,
        httpPort,
        host: '127.0.0.1',
        domain: 'paas.test',
      });
      planes.push(p);
      return p;
    };
    try {
      // What an older paas ran: the same configuration in master-worker mode, its worker's
      // runtime socket at admin.sock itself, a master socket, the master's pid in the file.
      const first = make();
      await first.connect();
      await first.setRoutes({
        domain: 'paas.test',
        apps: { app: { domains: [], backends: [{ host: '127.0.0.1', port: one.port }] } },
      });
      await first.stop();
      const cfg = readFileSync(paths.cfg, 'utf8').replace(
        /^ {2}stats socket \S+/m,
        `  master-worker\n  pidfile ${paths.pid}\n  stats socket ${paths.admin}`,
      );
      writeFileSync(paths.cfg, cfg);
      rmSync(paths.admin);
      const master = spawn(
        '/usr/sbin/haproxy',
        ['-W', '-S', `${join(paths.dir, 'master.sock')},mode,600`, '-f', paths.cfg],
        { detached: true, stdio: 'ignore' },
      );
      master.unref();
      await until(
        async () => (await cli(paths.admin, ['show info']).catch(() => '')).includes('Pid:'),
        10_000,
        'the master-worker haproxy to answer',
      );
      const oldWorker = Number(/^Pid: (\d+)/m.exec(await cli(paths.admin, ['show info']))?.[1]);
      expect(children(master.pid!)).toEqual([oldWorker]);
      expect(nameOf((await request(httpPort, 'app.paas.test')).body)).toBe('one');

      // Under a request loop, the next daemon takes over: a new haproxy of its own kind, the
      // listening socket handed over, the master and its worker gone.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const loop = requestLoop(httpPort, 'app.paas.test', Array(4).fill(agent), {
        max: 20_000,
        ms: 15_000,
      });
      await until(() => loop.ok > 100, 10_000, 'load before the upgrade');
      const next = make();
      const adopted = await next.connect();
      expect(adopted.started).toBe(false);
      const okAt = loop.ok;
      await until(() => loop.ok > okAt + 100, 10_000, 'load after the upgrade');
      const { failures } = await loop.stop();
      agent.destroy();
      expect(failures).toEqual([]);
      expect([oldWorker, master.pid]).not.toContain(adopted.pid);
      expect(children(adopted.pid)).toEqual([]);
      expect(readlinkSync(paths.admin)).toMatch(/^admin-\d+\.sock$/);
      expect(Number(readFileSync(paths.pid, 'utf8'))).toBe(adopted.pid);
      await until(
        () => !alive(oldWorker) && !alive(master.pid!),
        10_000,
        'the master-worker pair to exit',
      );
      expect(existsSync(join(paths.dir, 'master.sock'))).toBe(false);
      expect(nameOf((await request(httpPort, 'app.paas.test')).body)).toBe('one');
      await next.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Changing the data plane (`--router`, or a new default) on a box whose other plane serves:
// the daemon's RouterLink starts the new plane beside the old one, on its table and ports,
// gives it the certificates, and only then stops the old one. Under bounded request loops,
// every request on a kept-alive connection is answered by the app, and on new connections
// every request that reached a plane is (one queued on the old listener as it closes may be
// reset); afterwards only the new plane runs, and it serves the app's HTTPS certificate.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { TestCa } from '../../test/helpers/certs.ts';
import { alive, freePorts } from '../../test/helpers/host.ts';
import { createDataPlane, type RouterCerts } from '../router/index.ts';
import { request, requestLoop, until, upstream, type Upstream } from '../router/testing.ts';
import { RouterLink } from './router-link.ts';

const dirs: string[] = [];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stops) await s().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The subject CN a fresh handshake with `servername` gets. */
function cnOf(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.once('error', (e) => resolve(`error: ${e.message}`));
  });
}

/**
 * A plane's settings on free ports in a fresh data dir, an app `shop` (an upstream) at
 * shop.example.com and shop.paas.test, and a certificate for shop.example.com.
 */
async function fixture(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dataDir);
  const [httpPort, httpsPort] = await freePorts(2);
  const cfg = {
    dataDir,
    httpPort: httpPort!,
    httpsPort: httpsPort!,
    host: '127.0.0.1',
    domain: 'paas.test',
    workers: 1,
  };
  const app: Upstream = await upstream('shop');
  stops.push(() => app.close());
  const leaf = TestCa.root(join(dataDir, 'ca')).leaf(['shop.example.com']);
  const certs: RouterCerts = {
    hosts: { 'shop.example.com': { cert: leaf.chain, key: leaf.key } },
    default: null,
  };
  const table = {
    domain: 'paas.test',
    apps: {
      shop: {
        domains: ['shop.example.com'],
        backends: [{ host: '127.0.0.1', port: app.port }],
      },
    },
  };
  return { cfg, app, certs, table };
}

describe('changing the data plane', () => {
  for (const [from, to] of [
    ['node', 'haproxy'],
    ['haproxy', 'node'],
  ] as const)
    it(`${from} → ${to}: the new plane takes the table, ports and certificates, the old one leaves, no request it took fails`, async () => {
      const { cfg, app, certs, table } = await fixture('paas-handover-');

      const before = new RouterLink(createDataPlane(from, cfg), { certs: () => certs });
      const first = await before.connect();
      stops.push(() => before.plane.stop());
      await before.setRoutes(table);
      before.close();
      expect(await cnOf(cfg.httpsPort, 'shop.example.com')).toBe('shop.example.com');

      // Kept-alive connections, and a connection a request.
      const keep = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const kept = requestLoop(cfg.httpPort, 'shop.paas.test', [keep, keep, keep, keep]);
      const fresh = requestLoop(cfg.httpPort, 'shop.paas.test', [false, false, false, false]);
      // Requests flowing before the change.
      await new Promise((r) => setTimeout(r, 300));
      const after = new RouterLink(createDataPlane(to, cfg), { certs: () => certs });
      stops.push(() => after.plane.stop());
      const second = await after.connect();
      await new Promise((r) => setTimeout(r, 300));
      const { ok, failures } = await kept.stop();
      const { ok: freshOk, failures: freshFailures } = await fresh.stop();
      keep.destroy();

      expect(second).toMatchObject({ started: true, replaced: from });
      expect(failures).toEqual([]);
      expect(ok).toBeGreaterThan(0);
      expect(freshOk).toBeGreaterThan(0);
      // Every request that reached a plane was answered by the app. A new connection the
      // kernel had queued on the old listener in the instant it closed is reset instead
      // (SO_REUSEPORT listeners share no queue: README, Data planes); nothing else fails.
      expect(freshFailures.filter((f) => !/ECONNRESET|socket hang up/.test(f))).toEqual([]);
      expect(alive(first.pid)).toBe(false);
      expect((await after.plane.health()).kind).toBe(to);
      expect(await after.plane.routes()).toMatchObject(table);
      expect(await cnOf(cfg.httpsPort, 'shop.example.com')).toBe('shop.example.com');
      expect(app.seen.length).toBe(ok + freshOk);
    });
});

/** Pids of the processes whose command line names `dir` (a plane's, by its data dir). */
function processesOf(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir) && alive(Number(p)))
        out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out.sort((a, b) => a - b);
}

describe('a plane process that was killed', () => {
  for (const kind of ['node', 'haproxy'] as const)
    it(`${kind}: revive starts it again on its table with its certificates, once, also beside a switch`, async () => {
      const { cfg, certs, table } = await fixture('paas-revive-');
      const dataDir = cfg.dataDir;
      const backends = table.apps.shop.backends;
      const link = new RouterLink(createDataPlane(kind, cfg), { certs: () => certs });
      stops.push(() => link.plane.stop());
      await link.connect();
      await link.setRoutes(table);
      const serves = async () => (await request(cfg.httpPort, 'shop.example.com')).status === 200;
      expect(await serves()).toBe(true);
      expect(await link.revive()).toBeNull();
      const running = processesOf(dataDir);

      const killAll = async () => {
        for (const pid of processesOf(dataDir)) process.kill(pid, 'SIGKILL');
        await until(async () => !(await serves().catch(() => false)), 10_000, 'the port to close');
      };
      await killAll();
      const r = await link.revive();
      expect(r).toMatchObject({ started: true, httpsPort: cfg.httpsPort });
      expect(running).not.toContain(r!.pid);
      expect(await serves()).toBe(true);
      // The node plane keeps certificates in memory only: they were pushed again.
      expect(await cnOf(cfg.httpsPort, 'shop.example.com')).toBe('shop.example.com');
      expect(await link.revive()).toBeNull();
      expect(processesOf(dataDir)).toHaveLength(running.length);

      // Killed again, and a switch finds it gone at the same moment as the watch does: one
      // process is started, and both calls succeed.
      await killAll();
      const [again] = await Promise.all([link.revive(), link.switch('shop', backends)]);
      expect(await serves()).toBe(true);
      expect(await link.revive()).toBeNull();
      expect(processesOf(dataDir)).toHaveLength(running.length);
      if (again !== null) expect(processesOf(dataDir)).toContain(again.pid);
    });
});

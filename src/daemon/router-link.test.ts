// Changing the data plane (`--router`, or a new default) on a box whose other plane serves:
// the daemon's RouterLink starts the new plane beside the old one, on its table and ports,
// gives it the certificates, and only then stops the old one. Under a bounded request loop
// over kept-alive and fresh connections, every request is answered by the app; afterwards
// only the new plane runs, and it serves the app's HTTPS certificate.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { TestCa } from '../../test/helpers/certs.ts';
import { alive, freePorts } from '../../test/helpers/host.ts';
import { createDataPlane, type RouterCerts } from '../router/index.ts';
import { upstream, type Upstream } from '../router/testing.ts';
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

/** Bounded GETs to the app: half over kept-alive connections, half a connection each. */
function load(port: number): { stop(): Promise<{ ok: number; failures: string[] }> } {
  const keep = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const deadline = Date.now() + 60_000;
  const one = (agent: http.Agent | false): Promise<void> =>
    new Promise((resolve) => {
      http
        .get({ host: '127.0.0.1', port, agent, headers: { host: 'shop.paas.test' } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        })
        .on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
    });
  const agents: (http.Agent | false)[] = [keep, keep, keep, keep, false, false, false, false];
  const loops = agents.map(async (agent) => {
    while (!stop && ok + failures.length < 50_000 && Date.now() < deadline) await one(agent);
  });
  return {
    async stop() {
      stop = true;
      await Promise.all(loops);
      keep.destroy();
      return { ok, failures };
    },
  };
}

describe('changing the data plane', () => {
  for (const [from, to] of [
    ['node', 'haproxy'],
    ['haproxy', 'node'],
  ] as const)
    it(`${from} → ${to}: the new plane takes the table, ports and certificates, the old one leaves, no request fails`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'paas-handover-'));
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

      const before = new RouterLink(createDataPlane(from, cfg), { certs: () => certs });
      const first = await before.connect();
      stops.push(() => before.plane.stop());
      await before.setRoutes(table);
      before.close();
      expect(await cnOf(cfg.httpsPort, 'shop.example.com')).toBe('shop.example.com');

      const traffic = load(cfg.httpPort);
      // Requests flowing before the change.
      await new Promise((r) => setTimeout(r, 300));
      const after = new RouterLink(createDataPlane(to, cfg), { certs: () => certs });
      stops.push(() => after.plane.stop());
      const second = await after.connect();
      await new Promise((r) => setTimeout(r, 300));
      const { ok, failures } = await traffic.stop();

      expect(second).toMatchObject({ started: true, replaced: from });
      expect(failures).toEqual([]);
      expect(ok).toBeGreaterThan(0);
      expect(alive(first.pid)).toBe(false);
      expect((await after.plane.health()).kind).toBe(to);
      expect(await after.plane.routes()).toMatchObject(table);
      expect(await cnOf(cfg.httpsPort, 'shop.example.com')).toBe('shop.example.com');
      expect(app.seen.length).toBe(ok);
    });
});

// Apps have defaults and borders (issue 15), end to end on a real daemon, router and runtime:
// a fork bomb and a memory hog in one app's Procfile are held by the daemon's default limits
// while another app keeps answering through the router; an app's container reaches the
// internet and other apps through the router's public port, but not another app's container
// nor the host's other ports (the API here, listening on every address); raw sockets only with resources:set --cap-net-raw on.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { internetStandIn, REPO, waitFor } from '../helpers/host.ts';
import { appRepo, cli, DOMAIN, get, push, requestLoop, startPaas, type Paas } from './harness.ts';

let p: Paas;
let inet: ReturnType<typeof internetStandIn>;
beforeAll(async () => {
  inet = internetStandIn('e2e', 83, 'hello from the internet\n');
  // The API on every address, as a box reachable by its operator would have it; small
  // defaults so the bounded bomb and hog meet them quickly.
  p = await startPaas({
    daemonArgs: ['--api-host', '0.0.0.0', '--default-memory', '64m', '--default-pids', '64'],
  });
  for (const [fixture, app] of [
    ['busybox-web', 'other'],
    ['borders', 'rogue'],
  ] as const) {
    const r = await push(p, appRepo(fixture).dir, app);
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(async () => {
  await p?.cleanup();
  inet?.close();
});

const ps = async (app: string) => {
  const r = await cli(p, ['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { process: string; ip: string | null; lastExit: string | null }[];
};
const logs = async (app: string) => (await cli(p, ['logs', app, '-n', '3000'])).stdout;

/** `paas run APP -- sh -c SCRIPT`, stdin closed. */
const run = (app: string, script: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(`${REPO}/bin/paas`, ['run', app, '--', 'sh', '-c', script], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end();
  });

/** The highest count the bomb reached ("bomb at N", every 8 forks), over all its runs. */
const bombReached = (log: string) =>
  Math.max(0, ...[...log.matchAll(/app\[bomb\.1\]: bomb at (\d+)/g)].map((m) => Number(m[1])));

describe('default limits', () => {
  it(
    'hold a fork bomb and a memory hog in one app while another app keeps answering',
    {
      timeout: 240_000,
    },
    async () => {
      const loop = requestLoop(p, 'other', '/', { minRequests: 100 });
      const up = await cli(p, ['ps:scale', 'rogue', 'bomb=1', 'hog=1']);
      expect(up.code, up.stderr).toBe(0);
      // The shell dies when fork fails (busybox: "can't fork"); the supervisor restarts it.
      await waitFor(
        'the bomb to hit the limit',
        async () => /app\[bomb\.1\]: .*can't fork/.test(await logs('rogue')),
        120_000,
        500,
      );
      await waitFor(
        'the hog to be OOM-killed',
        async () => (await logs('rogue')).includes('hog.1: v1 was killed: out of memory (OOM)'),
        120_000,
        500,
      );
      await loop.end();
      expect(loop.failures).toEqual([]);
      const log = await logs('rogue');
      // 64 tasks in the bomb's cgroup, its shell and init among them.
      expect(bombReached(log)).toBeGreaterThan(0);
      expect(bombReached(log)).toBeLessThan(64);
      expect(log).not.toContain('bomb forked all 1000');
      expect(log).not.toContain('hog survived');
      // The daemon still answers, and the bomb's own app still serves.
      expect((await ps('other')).map((x) => x.process)).toEqual(['web.1']);
      expect((await get(p, 'rogue')).status).toBe(200);
      expect((await cli(p, ['ps:scale', 'rogue', 'hog=0', 'bomb=0'])).code).toBe(0);
    },
  );

  it(
    'resources:set --pids gives one process type its own limit',
    { timeout: 240_000 },
    async () => {
      const set = await cli(p, ['resources:set', 'rogue', '--pids', '128', '--ps', 'bomb']);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toMatch(/^bomb\s+-\s+-\s+128\s+-$/m);
      expect((await cli(p, ['ps:scale', 'rogue', 'bomb=1'])).code).toBe(0);
      const reached = await waitFor(
        'the bomb to pass the default limit',
        async () => {
          const n = bombReached(await logs('rogue'));
          return n > 64 ? n : null;
        },
        120_000,
        500,
      );
      expect(reached).toBeLessThan(128);
      expect(await logs('rogue')).not.toContain('bomb forked all 1000');
      expect((await cli(p, ['ps:scale', 'rogue', 'bomb=0'])).code).toBe(0);
    },
  );
});

describe('network borders', () => {
  it(
    "an app reaches the internet and another app by its public URL, but not another app's container nor the API via the gateway",
    {
      timeout: 180_000,
    },
    async () => {
      const other = (await ps('other')).find((x) => x.process === 'web.1');
      expect(other?.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      // The router (on the host) reaches it, as every request of the loop above showed.
      expect((await get(p, 'other')).status).toBe(200);
      const probe = (label: string, url: string) =>
        `echo "${label}=$(timeout 4 wget -q -O - "${url}" 2>/dev/null | head -c 40 || true)"`;
      const r = await run(
        'rogue',
        [
          `gw=$(ip route | awk '/^default/ {print $3}')`,
          probe('internet', inet.url),
          probe('other', `http://${other!.ip}:5000/`),
          probe('api', `http://$gw:${p.apiPort}/api/ping`),
          // Another app by its public URL (which resolves to this host): through the router.
          `echo "router=$(timeout 4 wget -q -O - --header 'Host: other.${DOMAIN}' "http://$gw:${p.httpPort}/" 2>/dev/null | head -c 40 || true)"`,
        ].join('; '),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual([
        'internet=hello from the internet',
        'other=',
        'api=',
        'router=hello from v1',
      ]);
      // The API does listen on the gateway address: the host reaches it there.
      const gw = other!.ip!.replace(/\.\d+\.\d+$/, '.0.1');
      expect((await fetch(`http://${gw}:${p.apiPort}/api/ping`)).status).toBe(401);
    },
  );

  it(
    'raw sockets (ping) only with resources:set --cap-net-raw on',
    { timeout: 180_000 },
    async () => {
      const ping = 'ping -c 1 -W 2 127.0.0.1 >/dev/null 2>&1 && echo raw || echo none';
      expect((await run('rogue', ping)).stdout).toBe('none\n');
      const set = await cli(p, ['resources:set', 'rogue', '--cap-net-raw', 'on']);
      expect(set.code, set.stderr).toBe(0);
      expect((await run('rogue', ping)).stdout).toBe('raw\n');
      expect((await run('other', ping)).stdout).toBe('none\n');
      const bad = await cli(p, ['resources:set', 'rogue', '--cap-net-raw', 'maybe']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('--cap-net-raw: "maybe" must be on or off');
    },
  );
});

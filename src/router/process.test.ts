// The real thing: `ensureRouterRunning` spawns the detached router process with two
// workers; the table reaches both; kill -9 takes it down; the next start serves the
// persisted table before anyone pushes one.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive } from '../../test/helpers/host.ts';
import { ensureRouterRunning, RouterClient } from './index.ts';
import { answers } from './control.ts';
import { request, until, upstream, type Upstream } from './testing.ts';

let dataDir: string;
let port: number;
let one: Upstream;
let two: Upstream;
const pids: number[] = [];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'paas-router-proc-'));
  port = await freePort();
  one = await upstream('one');
  two = await upstream('two');
});

afterAll(async () => {
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
  await until(() => pids.every((p) => !alive(p)), 10_000, 'routers to stop').catch(() => {});
  await one?.close();
  await two?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const opts = () => ({
  dataDir,
  httpPort: port,
  host: '127.0.0.1',
  domain: 'paas.test',
  workers: 2,
});
const nameOf = (body: string): string => (JSON.parse(body) as { name: string }).name;

describe('router process', () => {
  it('starts detached with two workers, replaces a dead worker, survives kill -9 by restarting on the persisted table', async () => {
    const first = await ensureRouterRunning(opts());
    pids.push(first.pid);
    expect(first.started).toBe(true);
    expect(first.pid).not.toBe(process.pid);
    expect(readFileSync(join(dataDir, 'router', 'router.pid'), 'utf8').trim()).toBe(
      String(first.pid),
    );
    const ping = await first.client.ping();
    expect(ping).toMatchObject({ workers: 2, httpPort: port });

    // Asking again finds it running.
    const again = await ensureRouterRunning(opts());
    expect(again).toMatchObject({ started: false, pid: first.pid });
    again.client.close();

    await first.client.setRoutes({
      domain: 'paas.test',
      apps: {
        app: { domains: ['app.example.com'], backends: [{ host: '127.0.0.1', port: one.port }] },
      },
    });
    expect(nameOf((await request(port, 'app.example.com')).body)).toBe('one');

    // A switch reaches every worker: fresh connections (spread by the kernel over both
    // workers) all land on the new backend, and both workers report it.
    expect(await first.client.switch('app', [{ host: '127.0.0.1', port: two.port }])).toEqual({
      drained: true,
    });
    for (let i = 0; i < 20; i++)
      expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('two');
    const stats = await first.client.stats();
    expect(stats.workers).toHaveLength(2);
    for (const w of stats.workers)
      expect(w.apps.app?.map((u) => u.upstream)).toEqual([`127.0.0.1:${two.port}`]);
    expect(stats.workers.reduce((n, w) => n + (w.apps.app?.[0]?.requests ?? 0), 0)).toBe(20);

    // A worker that dies is replaced, and the replacement gets the current table.
    const victim = stats.workers[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await until(
      async () => {
        const now = await first.client.stats();
        return (
          now.workers.length === 2 &&
          !now.workers.some((w) => w.pid === victim) &&
          now.workers.every((w) => w.apps.app !== undefined)
        );
      },
      10_000,
      'a replacement worker',
    );
    for (let i = 0; i < 10; i++)
      expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('two');
    first.client.close();

    // kill -9: no clean shutdown; the workers follow their primary out.
    process.kill(first.pid, 'SIGKILL');
    await until(
      async () => !(await answers(join(dataDir, 'router.sock'))),
      5000,
      'control socket to go',
    );
    await until(
      async () =>
        await request(port, 'app.paas.test').then(
          () => false,
          () => true,
        ),
      5000,
      'port to close',
    );

    const second = await ensureRouterRunning(opts());
    pids.push(second.pid);
    expect(second.started).toBe(true);
    expect(second.pid).not.toBe(first.pid);
    // Nobody pushed a table: it came back from routes.json.
    expect(nameOf((await request(port, 'app.paas.test')).body)).toBe('two');
    expect(nameOf((await request(port, 'app.example.com')).body)).toBe('two');
    expect((await second.client.routes()).apps.app?.backends).toEqual([
      { host: '127.0.0.1', port: two.port },
    ]);
    second.client.close();

    // SIGTERM stops it cleanly: socket and pid file gone.
    process.kill(second.pid, 'SIGTERM');
    await until(() => !alive(second.pid), 10_000, 'router to exit');
    await expect(RouterClient.connect(dataDir, 500)).rejects.toThrow(/not running|did not answer/);
    expect(() => readFileSync(join(dataDir, 'router', 'router.pid'))).toThrow();
  });
});

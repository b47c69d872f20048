// kill -9 of the daemon in the middle of a build: apps keep serving while it is down, and a
// restart frees the lock, marks the build failed and takes the next push.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/runtime/index.ts';
import { alive, freePorts, waitFor } from '../helpers/host.ts';
import {
  appRepo,
  BIN,
  cli,
  DOMAIN,
  E2E_PLANE,
  get,
  push,
  remoteLines,
  requestLoop,
  startPaas,
  type Paas,
} from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
});

/** phoenix's processes as [process, state, container id]: what an adoption must keep. */
async function ps(): Promise<string[][]> {
  type Row = { process: string; state: string; id: string };
  const rows = JSON.parse((await cli(p, ['ps', 'phoenix', '--json'])).stdout) as Row[];
  return rows.map((x) => [x.process, x.state, x.id]);
}

describe('daemon killed mid-build', () => {
  it('recovers: lock free, build failed, live release still serving, next push works', async () => {
    const repo = appRepo('busybox-web');
    const first = await push(p, repo.dir, 'survivor');
    expect(first.code, first.stderr).toBe(0);

    repo.write(
      'Dockerfile',
      `FROM busybox\nRUN sleep 60 && echo ${Math.random()}\nCOPY www /www\nCMD ["httpd", "-f", "-p", "5000", "-h", "/www"]\n`,
    );
    repo.commit('slow');
    const slow = push(p, repo.dir, 'survivor');
    const deadline = Date.now() + 90_000;
    for (;;) {
      const b = JSON.parse((await cli(p, ['builds', 'survivor', '--json'])).stdout) as {
        status: string;
      }[];
      if (b.length === 2 && b[0]!.status === 'running') break;
      if (Date.now() > deadline) throw new Error('the slow build never started');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    p.kill9();
    const r = await slow;
    expect(r.code).not.toBe(0);
    // The push's HTTP stream went down with the daemon: git reports the broken connection.
    expect(r.stderr).toMatch(/hung up|RPC failed|unexpected disconnect|Empty reply/);
    // The router and the app's container outlive the daemon.
    expect(await get(p, 'survivor')).toEqual({ status: 200, body: 'hello from v1\n' });

    await p.start();
    const info = JSON.parse((await cli(p, ['apps:info', 'survivor', '--json'])).stdout) as {
      release: string;
      lock: unknown;
    };
    expect(info).toMatchObject({ release: 'v1', lock: null });
    const b = JSON.parse((await cli(p, ['builds', 'survivor', '--json'])).stdout) as {
      status: string;
      error: string;
    }[];
    expect(b[0]).toMatchObject({ status: 'failed', error: 'the daemon stopped during the build' });
    expect(await get(p, 'survivor')).toEqual({ status: 200, body: 'hello from v1\n' });
    const ps = JSON.parse((await cli(p, ['ps', 'survivor', '--json'])).stdout) as {
      process: string;
      release: string;
      state: string;
    }[];
    expect(ps).toEqual([
      expect.objectContaining({ process: 'web.1', release: 'v1', state: 'running' }),
    ]);
    // The interrupted build's step container was cleaned up at start.
    const { createRuntime } = await import('../../src/runtime/index.ts');
    const left = (await createRuntime('native', { dataDir: p.dataDir }).list()).filter(
      (c) => c.labels['paas.build'] !== undefined,
    );
    expect(left).toEqual([]);

    repo.write(
      'Dockerfile',
      'FROM busybox\nCOPY www /www\nCMD ["httpd", "-f", "-p", "5000", "-h", "/www"]\n',
    );
    repo.write('www/index.html', 'after the crash\n');
    repo.commit('fast again');
    const next = await push(p, repo.dir, 'survivor');
    expect(next.code, next.stderr).toBe(0);
    expect(remoteLines(next).at(-1)).toContain('Released v2');
    expect(await get(p, 'survivor')).toEqual({ status: 200, body: 'after the crash\n' });
  });
});

describe('daemon killed mid-deploy', () => {
  it('the app serves throughout; the restart rolls the deploy back, restarts what the formation wants and stops strays', async () => {
    const repo = appRepo('procs');
    expect((await push(p, repo.dir, 'phoenix')).code).toBe(0);
    expect((await cli(p, ['ps:scale', 'phoenix', 'web=2'])).code).toBe(0);
    const rt = createRuntime('native', { dataDir: p.dataDir });
    const ofApp = async () => (await rt.list()).filter((c) => c.labels.app === 'phoenix');

    // A bounded request loop through the router for the whole story; a slow box makes fewer
    // requests in it, so the loop runs on past the restart until it has made enough.
    const loop = requestLoop(p, 'phoenix', '/who.txt', { minRequests: 21 });
    try {
      // The new release waits in its health check (initialDelay) long enough to be killed there.
      repo.write(
        'app.json',
        JSON.stringify({
          healthchecks: { web: [{ path: '/', initialDelay: 5, attempts: 2, wait: 1 }] },
        }),
      );
      repo.write('www/index.html', 'v2 never finished\n');
      repo.commit('slow check');
      const pushing = push(p, repo.dir, 'phoenix');
      const deadline = Date.now() + 90_000;
      while (!(await ofApp()).some((c) => c.labels.release === 'v2' && c.state === 'running')) {
        if (Date.now() > deadline) throw new Error('the v2 processes never started');
        await new Promise((r) => setTimeout(r, 100));
      }
      p.kill9();
      expect((await pushing).code).not.toBe(0);
      // While the daemon is down, web.2 of v1 dies too.
      const web2 = (await ofApp()).find(
        (c) => c.labels.release === 'v1' && c.labels.type === 'web' && c.labels.n === '2',
      )!;
      await rt.kill(web2.id, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 1000));
      expect((await get(p, 'phoenix')).body).toBe('hello from procs v1\n');

      await p.start();
      const ps = JSON.parse((await cli(p, ['ps', 'phoenix', '--json'])).stdout) as {
        process: string;
        release: string;
        state: string;
        id: string;
      }[];
      expect(ps.map((x) => [x.process, x.release, x.state])).toEqual([
        ['web.1', 'v1', 'running'],
        ['web.2', 'v1', 'running'],
      ]);
      // State matches what runs: exactly the processes ps shows, none of v2, no dead web.2.
      expect((await ofApp()).map((c) => c.id).sort()).toEqual(ps.map((x) => x.id).sort());
      const rs = JSON.parse((await cli(p, ['releases', 'phoenix', '--json'])).stdout) as {
        version: string;
        status: string;
        error: string | null;
      }[];
      expect(rs[0]).toMatchObject({
        version: 'v2',
        status: 'failed',
        error: 'the daemon stopped during the deploy',
      });
      expect(JSON.parse((await cli(p, ['apps:info', 'phoenix', '--json'])).stdout)).toMatchObject({
        release: 'v1',
        lock: null,
      });
      const seen = new Set<string>();
      for (let i = 0; i < 40 && seen.size < 2; i++)
        seen.add((await get(p, 'phoenix', '/who.txt')).body);
      expect([...seen].sort()).toEqual(['phoenix.web.1 v1\n', 'phoenix.web.2 v1\n']);
    } finally {
      await loop.end();
    }
    expect(loop.failures, loop.failures.join('\n')).toEqual([]);
    expect(loop.count).toBeGreaterThan(20);
    // The next push deploys normally.
    repo.write('app.json', '{}');
    repo.commit('fast check');
    const next = await push(p, repo.dir, 'phoenix');
    expect(next.code, next.stderr).toBe(0);
    expect((await get(p, 'phoenix')).body).toBe('v2 never finished\n');
  });
});

describe('daemon stopped with SIGTERM', () => {
  // Uses the app of the case above; deploying it here meets the same haproxy gap.
  it('exits at once while its apps keep running and serving, and a restart adopts them', async () => {
    expect((await get(p, 'phoenix')).status).toBe(200);
    const before = await ps();
    expect(before.length).toBeGreaterThan(0);
    const exited = new Promise<number | null>((r) => p.daemon.once('exit', (code) => r(code)));
    p.daemon.kill('SIGTERM');
    // Every process's exit watch used to hold the daemon until its 30 s wait timed out.
    // Order, not speed: the daemon is gone before the first of those 30 s waits could end.
    const watchEnds = new Promise<string>((r) =>
      setTimeout(() => r('still running when an exit watch would time out'), 30_000).unref(),
    );
    expect(await Promise.race([exited, watchEnds]), p.daemonLog().slice(-3000)).toBe(0);
    expect((await get(p, 'phoenix')).status).toBe(200);
    await p.start();
    // The same containers, adopted: nothing was stopped or restarted.
    expect(await ps()).toEqual(before);
    expect((await get(p, 'phoenix')).status).toBe(200);
  });
});

describe('a second daemon on the same data dir', () => {
  it('is refused before it touches anything, naming the first, which keeps serving its apps', async () => {
    const before = await ps();
    const [apiPort, httpPort, httpsPort, sshPort] = (await freePorts(4)).map(String);
    const second = spawn(
      BIN,
      [
        'daemon',
        ...['--data-dir', p.dataDir, '--api-port', apiPort!, '--api-host', '127.0.0.1'],
        ...['--http-port', httpPort!, '--https-port', httpsPort!, '--ssh-port', sshPort!],
        ...['--domain', DOMAIN, '--runtime', 'native'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    second.stdout.on('data', (d: Buffer) => (out += d.toString()));
    second.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => second.once('exit', (code) => r(code)));
    // Order, not speed: it must exit before it ever answers on its own API port. A hang guard
    // bounds the wait.
    const answered = (async () => {
      for (let i = 0; i < 1200; i++) {
        const ok = await fetch(`http://127.0.0.1:${apiPort}/api/ping`).then(
          (r) => r.status < 500,
          () => false,
        );
        if (ok) return 'answered on its API port';
        await new Promise((r) => setTimeout(r, 100));
      }
      return 'neither exited nor answered';
    })();
    const first = await Promise.race([exited, answered]);
    if (second.exitCode === null) second.kill('SIGKILL');
    expect(first, out).toBe(5);
    expect(out).toContain(
      `data dir ${p.dataDir} is in use by another paas daemon (pid ${p.daemon.pid})`,
    );
    expect((await get(p, 'phoenix')).status).toBe(200);
    expect(await ps()).toEqual(before);
  });
});

describe('the router killed while the daemon runs', () => {
  it('is started again by the daemon on its table, with no deploy, and the apps are left as they were', async () => {
    const before = await ps();
    expect((await get(p, 'phoenix')).status).toBe(200);
    const pidFile = join(
      p.dataDir,
      'router',
      E2E_PLANE === 'haproxy' ? 'haproxy/haproxy.pid' : 'router.pid',
    );
    const killed = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(killed)).toBe(true);
    process.kill(killed, 'SIGKILL');
    // Nobody deploys or restarts anything: the daemon's watch finds it gone and starts it.
    await waitFor('the daemon to start the router again', () =>
      p.daemonLog().includes(`the router (${E2E_PLANE}) was not answering: started it again`),
    );
    expect((await get(p, 'phoenix')).status).toBe(200);
    expect(Number(readFileSync(pidFile, 'utf8'))).not.toBe(killed);
    expect(await ps()).toEqual(before);
  });
});

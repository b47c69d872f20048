// kill -9 of the daemon in the middle of a build: apps keep serving while it is down, and a
// restart frees the lock, marks the build failed and takes the next push.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, get, push, remoteLines, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
});

describe('daemon killed mid-build', () => {
  it('recovers: lock free, build failed, live release still serving, next push works', async () => {
    const repo = appRepo('busybox-web');
    const first = await push(p, repo.dir, 'survivor');
    expect(first.code, first.stderr).toBe(0);

    repo.write('Dockerfile', `FROM busybox\nRUN sleep 60 && echo ${Math.random()}\nCOPY www /www\nCMD ["httpd", "-f", "-p", "5000", "-h", "/www"]\n`);
    repo.commit('slow');
    const slow = push(p, repo.dir, 'survivor');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const b = JSON.parse((await cli(p, ['builds', 'survivor', '--json'])).stdout) as { status: string }[];
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
    const info = JSON.parse((await cli(p, ['apps:info', 'survivor', '--json'])).stdout) as { release: string; lock: unknown };
    expect(info).toMatchObject({ release: 'v1', lock: null });
    const b = JSON.parse((await cli(p, ['builds', 'survivor', '--json'])).stdout) as { status: string; error: string }[];
    expect(b[0]).toMatchObject({ status: 'failed', error: 'the daemon stopped during the build' });
    expect(await get(p, 'survivor')).toEqual({ status: 200, body: 'hello from v1\n' });
    const ps = JSON.parse((await cli(p, ['ps', 'survivor', '--json'])).stdout) as { process: string; release: string; state: string }[];
    expect(ps).toEqual([expect.objectContaining({ process: 'web.1', release: 'v1', state: 'running' })]);
    // The interrupted build's step container was cleaned up at start.
    const { createRuntime } = await import('../../src/runtime/index.ts');
    const left = (await createRuntime('native', { dataDir: p.dataDir }).list()).filter((c) => c.labels['paas.build'] !== undefined);
    expect(left).toEqual([]);

    repo.write('Dockerfile', 'FROM busybox\nCOPY www /www\nCMD ["httpd", "-f", "-p", "5000", "-h", "/www"]\n');
    repo.write('www/index.html', 'after the crash\n');
    repo.commit('fast again');
    const next = await push(p, repo.dir, 'survivor');
    expect(next.code, next.stderr).toBe(0);
    expect(remoteLines(next).at(-1)).toContain('Released v2');
    expect(await get(p, 'survivor')).toEqual({ status: 200, body: 'after the crash\n' });
  });
});

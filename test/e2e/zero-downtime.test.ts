// Zero-downtime deploys, end to end (issue 7; issue 20 runs this file on both data planes:
// vitest.config.ts's e2e-node project): ten back-to-back deploys (pushes and config
// changes) and a rolling restart under a bounded request loop through the router, and not
// one request fails.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, get, push, requestLoop, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
});

const ps = async (app: string): Promise<{ process: string; state: string; id: string }[]> => {
  const r = await cli(p, ['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { process: string; state: string; id: string }[];
};

describe('zero-downtime deploys', () => {
  it('ten back-to-back deploys (pushes and config changes) and a rolling restart: no failed request', async () => {
    const repo = appRepo('procs');
    expect((await push(p, repo.dir, 'steady')).code).toBe(0);
    expect((await cli(p, ['ps:scale', 'steady', 'web=2'])).code).toBe(0);
    const loop = requestLoop(p, 'steady', '/who.txt');
    try {
      for (let i = 1; i <= 10; i++) {
        if (i % 4 === 0) {
          repo.write('www/index.html', `code ${i}\n`);
          repo.commit(`code ${i}`);
          const r = await push(p, repo.dir, 'steady');
          expect(r.code, r.stderr).toBe(0);
          expect((await get(p, 'steady')).body).toBe(`code ${i}\n`);
        } else {
          const r = await cli(p, ['config:set', 'steady', `GREETING=deploy-${i}`]);
          expect(r.code, r.stderr).toBe(0);
          expect((await get(p, 'steady', '/env.txt')).body).toBe(`GREETING=deploy-${i}\n`);
        }
      }
      const before = (await ps('steady')).map((x) => x.id);
      const rr = await cli(p, ['ps:restart', 'steady']);
      expect(rr.code, rr.stderr).toBe(0);
      const after = await ps('steady');
      expect(after.map((x) => [x.process, x.state])).toEqual([
        ['web.1', 'running'],
        ['web.2', 'running'],
      ]);
      expect(after.some((x) => before.includes(x.id))).toBe(false);
    } finally {
      await loop.end();
    }
    expect(loop.failures).toEqual([]);
    expect(loop.count).toBeGreaterThan(50);
    // Every release served: bodies name the release that answered.
    expect(new Set([...loop.bodies.keys()].map((b) => b.split(' ')[1])).size).toBeGreaterThan(5);
  });
});

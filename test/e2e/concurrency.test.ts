// Pushes to one app run one at a time (a per-app lock held for the whole pipeline); pushes
// to different apps run side by side.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, get, push, remoteLines, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
});

interface BuildJson {
  id: number;
  status: string;
  startedAt: string;
  finishedAt: string | null;
}
const builds = async (app: string) =>
  JSON.parse((await cli(p, ['builds', app, '--json'])).stdout) as BuildJson[];

/** The fixture app with a build step that takes `seconds` (and a nonce so it is never cached). */
function slowApp(seconds: number, page: string) {
  const repo = appRepo('busybox-web');
  repo.write(
    'Dockerfile',
    `FROM busybox\nRUN sleep ${seconds} && echo ${Math.random()}\nCOPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n`,
  );
  repo.write('www/index.html', page);
  repo.commit('slow build');
  return repo;
}

const overlap = (a: BuildJson, b: BuildJson) =>
  Date.parse(a.startedAt) < Date.parse(b.finishedAt!) &&
  Date.parse(b.startedAt) < Date.parse(a.finishedAt!);

describe('concurrent pushes', () => {
  it('to two apps run in parallel', async () => {
    const a = slowApp(3, 'alpha\n');
    const b = slowApp(3, 'beta\n');
    const [ra, rb] = await Promise.all([push(p, a.dir, 'alpha'), push(p, b.dir, 'beta')]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const [ba] = await builds('alpha');
    const [bb] = await builds('beta');
    expect(overlap(ba!, bb!)).toBe(true);
    expect((await get(p, 'alpha')).body).toBe('alpha\n');
    expect((await get(p, 'beta')).body).toBe('beta\n');
  });

  it('to one app serialize: a config change waits its turn, a push that lost the race is refused clearly', async () => {
    const first = slowApp(3, 'first\n');
    const second = slowApp(1, 'second\n');
    const r1p = push(p, first.dir, 'serial');
    // Start the others once the first one holds the lock and is building.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const bs = await builds('serial').catch(() => [] as BuildJson[]);
      if (bs.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const [r2, cfg, r1] = await Promise.all([
      push(p, second.dir, 'serial'),
      cli(p, ['config:set', 'serial', 'WHO=config']),
      r1p,
    ]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(cfg.code, cfg.stderr).toBe(0);
    // The second push waited for the first, then found main moved under it: git would refuse
    // its ref update anyway, so it is refused before building anything.
    expect(r2.code).not.toBe(0);
    const text = remoteLines(r2).join('\n');
    expect(text).toMatch(
      /waiting for the running (push of [0-9a-f]{7}|config change) of serial to finish/,
    );
    expect(text).toMatch(
      /main moved to [0-9a-f]{7} while this push waited; fetch, then push again/,
    );
    const bs = await builds('serial');
    expect(bs).toHaveLength(1);
    const rs = JSON.parse((await cli(p, ['releases', 'serial', '--json'])).stdout) as {
      version: string;
      description: string;
    }[];
    expect(rs.map((r) => r.version)).toEqual(['v2', 'v1']);
    expect(rs[0]!.description).toBe('Config change: WHO');
    expect((await get(p, 'serial')).body).toBe('first\n');
    // After fetching, the second pusher's next push deploys.
    execFileSync(
      'git',
      [
        'pull',
        '-q',
        '--rebase',
        '-X',
        'theirs',
        `http://x:${p.token}@127.0.0.1:${p.apiPort}/serial.git`,
        'main',
      ],
      { cwd: second.dir, stdio: 'pipe' },
    );
    second.write('www/index.html', 'second\n');
    second.commit('after fetch');
    const r3 = await push(p, second.dir, 'serial');
    expect(r3.code, r3.stderr).toBe(0);
    expect((await get(p, 'serial')).body).toBe('second\n');
  });
});

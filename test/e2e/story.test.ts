// The product's whole story on a fresh box, in the order an operator lives it: setup.sh
// starts the platform on an empty data dir; a Dockerfile app, a Node buildpack app with a
// worker and a static site are pushed with real git and fetched through the router; then
// scale, config:set, `logs -t` seeing a request, rollback, a one-off `run`, and
// apps:destroy freeing the app's containers, routes, images (after GC) and logs.
// A step whose feature has not landed fails with a message that names what it needs.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/registry/index.ts';
import { createRuntime } from '../../src/runtime/index.ts';
import { REPO, waitFor } from '../helpers/host.ts';
import { cli, DOMAIN, freePort, get, push, remoteLines, type Paas } from './harness.ts';

const root = mkdtempSync(join(tmpdir(), 'paas-story-'));
const dataDir = join(root, 'data');
const SETUP = join(REPO, 'provision', 'setup.sh');
const BIN = join(REPO, 'bin', 'paas');
let p: Paas;

function setup(args: string[]): { code: number; out: string } {
  try {
    return {
      code: 0,
      out: execFileSync('bash', [SETUP, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 45 * 60_000,
        maxBuffer: 64 << 20,
      }).toString(),
    };
  } catch (e) {
    const err = e as { status: number | null; stdout?: Buffer; stderr?: Buffer };
    return {
      code: err.status ?? -1,
      out: `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`,
    };
  }
}

/** A git work tree holding a copy of a fixture, committed on main. */
function gitRepo(fixture: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(root, `${fixture.replace(/\//g, '-')}-`));
  cpSync(join(REPO, 'test', 'fixtures', fixture), dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  const git = (...a: string[]) => execFileSync('git', a, { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('-c', 'user.email=dev@example.com', '-c', 'user.name=Dev', 'add', '-A');
  git('-c', 'user.email=dev@example.com', '-c', 'user.name=Dev', 'commit', '-q', '-m', 'initial');
  return dir;
}

async function deploy(
  fixture: string,
  app: string,
  files: Record<string, string> = {},
): Promise<string[]> {
  const r = await push(p, gitRepo(fixture, files), app);
  const lines = remoteLines(r);
  expect(r.code, lines.join('\n')).toBe(0);
  expect(lines.at(-1)).toMatch(
    new RegExp(`Released v\\d+: http://${app}\\.${DOMAIN.replace('.', '\\.')}:${p.httpPort}/`),
  );
  return lines;
}

interface Proc {
  process: string;
  type: string;
  state: string;
  release: string;
}
const ps = async (app: string) => {
  const r = await cli(p, ['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Proc[];
};
const containersOf = async (app: string) =>
  (await createRuntime('native', { dataDir }).list()).filter((c) => c.labels.app === app);

beforeAll(async () => {
  const [apiPort, httpPort] = [await freePort(), await freePort()];
  // As an operator would (setup.sh), but on a temp data dir, free ports and this test's domain.
  const r = setup([
    '--data-dir',
    dataDir,
    '--api-port',
    String(apiPort),
    '--http-port',
    String(httpPort),
    '--domain',
    DOMAIN,
    '--bin-link',
    join(root, 'bin', 'paas'),
    '--base-images',
    'busybox,debian,node',
  ]);
  if (r.code !== 0) throw new Error(`setup.sh failed (${r.code}):\n${r.out}`);
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  // The harness's cli/push/get need only where the daemon is and its token.
  p = { dataDir, apiPort, httpPort, token } as Paas;
}, 45 * 60_000);

afterAll(() => {
  if (existsSync(dataDir)) setup(['--uninstall', '--purge', '--data-dir', dataDir]);
  rmSync(root, { recursive: true, force: true });
});

describe('three kinds of app, pushed with git and served by the router', () => {
  it('a Dockerfile app', async () => {
    await deploy('apps/busybox-web', 'shop');
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it('a Node app (Procfile web + worker) built by the Node buildpack', async () => {
    expect(
      existsSync(join(REPO, 'src', 'buildpacks', 'index.ts')),
      'the Node app needs src/buildpacks (issue 8)',
    ).toBe(true);
    // The fixture's worker logs once and exits (enough for the buildpack's own test); a worker
    // in this story runs on, as a queue consumer would, so the supervisor keeps it running.
    const lines = await deploy('buildpacks/express', 'notes', {
      'worker.js':
        "console.log(`worker up, express ${require('express/package.json').version}`);\nsetInterval(() => console.log('worker tick'), 60_000);\n",
    });
    expect(lines.join('\n')).toMatch(/node/i);
    expect((await get(p, 'notes')).body).toMatch(/^hello from express on v\d+\./);
    expect((await ps('notes')).map((x) => [x.process, x.state])).toEqual([['web.1', 'running']]);
  });

  it('ps:scale worker=1 starts the Procfile worker from the same image (non-web types start at 0, as on Heroku and Dokku)', async () => {
    const r = await cli(p, ['ps:scale', 'notes', 'worker=1']);
    expect(
      r.code,
      `ps:scale needs the processes issue (CLI ps:scale, its API and src/deploy's scale): ${r.stderr}`,
    ).toBe(0);
    // A worker has no port to check: it counts as running once it has stayed up a moment.
    const procs = await waitFor('worker.1 to be running', async () => {
      const list = await ps('notes');
      return list.every((x) => x.state === 'running') ? list : null;
    }).catch(async () => ps('notes'));
    expect(procs.map((x) => [x.process, x.state])).toEqual([
      ['web.1', 'running'],
      ['worker.1', 'running'],
    ]);
    const logs = await waitFor('the worker to log', async () => {
      const l = await cli(p, ['logs', 'notes', '-n', '200', '--ps', 'worker']);
      return l.stdout.includes('worker up') ? l.stdout : null;
    });
    expect(logs).toContain('app[worker.1]: worker up');
  });

  it('a static site', async () => {
    expect(
      existsSync(join(REPO, 'src', 'buildpacks', 'index.ts')),
      'the static site needs src/buildpacks (issue 8)',
    ).toBe(true);
    await deploy('buildpacks/static', 'site');
    const r = await get(p, 'site');
    expect(r.status).toBe(200);
    expect(r.body).toContain('Hello from a static site');
  });

  it('apps:list shows all three with their releases', async () => {
    const r = await cli(p, ['apps:list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(
      (JSON.parse(r.stdout) as { name: string; release: string | null }[]).map((a) => [
        a.name,
        a.release,
      ]),
    ).toEqual([
      ['notes', 'v1'],
      ['shop', 'v1'],
      ['site', 'v1'],
    ]);
  });
});

describe('living with an app', () => {
  it('ps:scale web=2 runs two web processes, both behind the router', async () => {
    const r = await cli(p, ['ps:scale', 'shop', 'web=2']);
    expect(
      r.code,
      `ps:scale needs the processes issue (CLI ps:scale, its API and src/deploy's scale): ${r.stderr}`,
    ).toBe(0);
    const procs = await ps('shop');
    expect(procs.filter((x) => x.type === 'web' && x.state === 'running')).toHaveLength(2);
    for (let i = 0; i < 4; i++)
      expect(await get(p, 'shop')).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it('config:set makes a release whose processes see the var', async () => {
    const r = await cli(p, ['config:set', 'shop', 'GREETING=from the story']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get(p, 'shop', '/env.txt')).body).toBe('GREETING=from the story\n');
  });

  it('logs -t sees a request as it happens', async () => {
    const follow = spawn(BIN, ['logs', 'shop', '-t', '-n', '0'], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let out = '';
    follow.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      // -n 0 prints nothing until a line arrives, so there is no sign of when the follow is
      // listening: request (bounded) until one request shows up while it runs.
      const marker = `story-${Date.now()}`;
      await waitFor(
        `"${marker}" in logs -t`,
        async () => {
          expect((await get(p, 'shop', `/?${marker}`)).status).toBe(200);
          return out.includes(marker);
        },
        60_000,
        300,
      );
      expect(out.split('\n').find((l) => l.includes(marker))).toMatch(
        /^\S+ (router|app\[web\.\d+\]): /,
      );
    } finally {
      follow.kill('SIGTERM');
    }
  });

  it('rollback returns to the release before the config change', async () => {
    const r = await cli(p, ['rollback', 'shop']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get(p, 'shop', '/env.txt')).body).toBe('GREETING=unset\n');
    const rs = JSON.parse((await cli(p, ['releases', 'shop', '--json'])).stdout) as {
      version: string;
      description: string;
    }[];
    expect(rs[0]).toMatchObject({ description: expect.stringMatching(/^Rollback to v\d+$/) });
  });

  it('run executes a one-off command in the current release', async () => {
    const r = await cli(p, [
      'run',
      'shop',
      '--',
      'sh',
      '-c',
      'cat /www/index.html; echo "app=$PAAS_APP"',
    ]);
    expect(
      r.code,
      `paas run needs the CLI command and its API (processes issue): ${r.stderr}`,
    ).toBe(0);
    expect(r.stdout).toContain('hello from v1');
    expect(r.stdout).toContain('app=shop');
  });
});

describe('apps:destroy frees what the app held', () => {
  let shopImages: string[] = [];

  it('its containers, its route and its logs', async () => {
    expect((await containersOf('shop')).length).toBeGreaterThan(0);
    const rs = JSON.parse((await cli(p, ['releases', 'shop', '--json'])).stdout) as {
      imageDigest: string;
    }[];
    shopImages = [...new Set(rs.map((r) => r.imageDigest))];
    expect(shopImages.length).toBeGreaterThan(0);
    const r = await cli(p, ['apps:destroy', 'shop', '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(await containersOf('shop')).toEqual([]);
    expect((await get(p, 'shop')).status).toBe(404);
    expect(existsSync(join(dataDir, 'logs', 'apps', 'shop'))).toBe(false);
    // The other apps are untouched.
    expect((await get(p, 'site')).status).toBe(200);
  });

  it('its images, after images:gc', async () => {
    const gc = await cli(p, ['images:gc']);
    expect(
      gc.code,
      `images:gc needs the CLI command and its API over src/registry's GC: ${gc.stderr}`,
    ).toBe(0);
    const store = await openStore(dataDir);
    // apps:destroy must let go of the app's images (its tags) for GC to free their blobs.
    const tags = await Promise.resolve(store.tags('shop')).catch(() => [] as string[]);
    expect(tags, "the destroyed app's image tags (apps:destroy should untag them)").toEqual([]);
    for (const d of shopImages)
      expect(await store.hasBlob(d), `image ${d} of the destroyed app after GC`).toBe(false);
    // Base images stay: other apps and the next build need them.
    expect(await store.tags('library/busybox')).toContain('latest');
  });
});

// Issue 16's conventions, end to end: apps that follow Heroku's and Dokku's conventions are
// pushed unchanged with real git to a real daemon and fetched through the router. A Procfile
// web line without a start script; a predeploy writing to /app; app.json formation and
// postdeploy; an image that listens only on its EXPOSEd port; a wildcard custom domain that
// covers names more than one label below it (issue 17: the API used to refuse it).
// Skipped only with PAAS_SKIP_BASE_IMAGES=1 (the Node apps need the node base images).
import { request } from 'node:http';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/host.ts';
import {
  appRepo,
  BUILDPACK_FIXTURES,
  cli,
  get,
  push,
  remoteLines,
  startPaasWithBaseImages,
  type Paas,
} from './harness.ts';

const SKIP = process.env.PAAS_SKIP_BASE_IMAGES === '1';

let p: Paas;
beforeAll(async () => {
  if (SKIP) return;
  p = await startPaasWithBaseImages();
}, 45 * 60_000);
const repos: string[] = [];
afterAll(async () => {
  await p?.cleanup();
  for (const d of repos) rmSync(d, { recursive: true, force: true });
});

function repo(fixture: string, from?: string): ReturnType<typeof appRepo> {
  const r = appRepo(fixture, undefined, from);
  repos.push(r.dir);
  return r;
}

/** Pushes and expects success; the push's `remote:` lines. */
async function deploy(dir: string, app: string): Promise<string[]> {
  const r = await push(p, dir, app);
  const lines = remoteLines(r);
  expect(r.code, lines.join('\n')).toBe(0);
  return lines;
}

const webProcs = async (app: string) => {
  const r = await cli(p, ['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { process: string; type: string; release: string }[]).filter(
    (x) => x.type === 'web',
  );
};

/** GET through the router with any Host header. */
function getHost(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: p.httpPort, path: '/', headers: { host }, timeout: 10_000 },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe.skipIf(SKIP)('buildpack conventions (Node)', () => {
  it(
    'a Procfile web line deploys an app with no start script and no index.js',
    async () => {
      const app = repo('procfile-web', BUILDPACK_FIXTURES);
      await deploy(app.dir, 'procweb');
      const r = await get(p, 'procweb');
      expect(r.status, r.body).toBe(200);
      // The web process wrote /app/started.txt before listening: the app owns its directory.
      expect(r.body).toMatch(/^procfile web on v24\.\d+\.\d+\n$/);
    },
    10 * 60_000,
  );

  it(
    'scripts.dokku.predeploy may write to /app (the app owns its directory)',
    async () => {
      const app = repo('node22', BUILDPACK_FIXTURES);
      app.write(
        'app.json',
        JSON.stringify({
          scripts: {
            dokku: { predeploy: 'touch /app/predeploy.test && ls -n /app/predeploy.test' },
          },
        }),
      );
      app.commit('a predeploy that writes to /app');
      const lines = await deploy(app.dir, 'predeploy');
      const at = lines.findIndex((l) => /\$ app\.json predeploy/.test(l));
      expect(at, lines.join('\n')).toBeGreaterThan(0);
      // `ls -n`: the file belongs to the app's uid (999), not root.
      expect(lines.slice(at).join('\n')).toMatch(
        /-rw-r--r-- +1 999 +999 +0 .*\/app\/predeploy\.test/,
      );
      expect((await get(p, 'predeploy')).body).toMatch(/^v22\./);
    },
    10 * 60_000,
  );
});

describe.skipIf(SKIP)('app.json formation and postdeploy', () => {
  const appJson = (web: number, postdeploy: string) =>
    JSON.stringify({
      formation: { web: { quantity: web } },
      scripts: { dokku: { postdeploy }, postdeploy: 'echo "heroku postdeploy: first deploy only"' },
    });
  let app: ReturnType<typeof appRepo>;

  it(
    'formation web=2 starts two web processes on the first deploy; postdeploy runs once, after the switch',
    async () => {
      app = repo('busybox-web');
      app.write('app.json', appJson(2, 'echo "postdeploy of $PAAS_RELEASE"'));
      app.commit('app.json with formation and postdeploy');
      const lines = await deploy(app.dir, 'formed');
      expect(lines.join('\n')).toMatch(/app\.json formation: web=2 \(first deploy\)/);
      expect((await webProcs('formed')).map((x) => x.process).sort()).toEqual(['web.1', 'web.2']);
      // Once per deploy (not per process), and only once the route points at the new release.
      const ran = lines.filter((l) => /^\s*postdeploy of v1$/.test(l));
      expect(ran, lines.join('\n')).toHaveLength(1);
      const switched = lines.findIndex((l) => /Switching route/.test(l));
      expect(switched).toBeGreaterThan(0);
      expect(lines.indexOf(ran[0]!)).toBeGreaterThan(switched);
      expect(lines.filter((l) => /^\s*heroku postdeploy: first deploy only$/.test(l))).toHaveLength(
        1,
      );
      // Its output is in the app's log too.
      await waitFor('the postdeploy line in the log', async () =>
        (await cli(p, ['logs', 'formed', '-n', '500'])).stdout.includes('postdeploy of v1'),
      );
      expect((await get(p, 'formed')).status).toBe(200);
    },
    5 * 60_000,
  );

  it(
    "a later deploy keeps the operator's ps:scale; a failing postdeploy is logged and the release stays live",
    async () => {
      expect((await cli(p, ['ps:scale', 'formed', 'web=1'])).code).toBe(0);
      app.write('app.json', appJson(3, 'echo "postdeploy of $PAAS_RELEASE"; exit 3'));
      app.write('www/index.html', 'hello from v2\n');
      app.commit('app.json asks for 3 and a failing postdeploy');
      const lines = await deploy(app.dir, 'formed');
      const out = lines.join('\n');
      expect(out).not.toMatch(/app\.json formation/);
      expect((await webProcs('formed')).map((x) => `${x.process}@${x.release}`)).toEqual([
        'web.1@v2',
      ]);
      expect(out).toMatch(/^\s*postdeploy of v2$/m);
      expect(out).toMatch(/app\.json postdeploy failed \(exit code 3\); v2 stays live/);
      expect(out).not.toMatch(/first deploy only/);
      expect(lines.at(-1)).toMatch(/Released v2:/);
      expect(await get(p, 'formed')).toEqual({ status: 200, body: 'hello from v2\n' });
    },
    5 * 60_000,
  );
});

describe.skipIf(SKIP)('web port', () => {
  it(
    'an image listening only on its EXPOSEd 8080 deploys and serves; the push says which port',
    async () => {
      const app = repo('exposed');
      const lines = await deploy(app.dir, 'exposed');
      expect(lines.join('\n')).toMatch(/web port 8080: the image EXPOSEs 8080\/tcp only/);
      expect(await get(p, 'exposed')).toEqual({ status: 200, body: 'served from 8080\n' });
      const ports = await cli(p, ['ports', 'exposed', '--json']);
      expect(JSON.parse(ports.stdout)).toMatchObject({ port: 8080, exposed: [8080] });
      // PORT stays the contract: the process sees the port it is routed to.
      await waitFor('PORT in the app log', async () =>
        (await cli(p, ['logs', 'exposed', '-n', '200'])).stdout.includes(
          'PORT is 8080, listening on 8080',
        ),
      );
    },
    5 * 60_000,
  );

  it(
    'ports:set overrides (a new release with PORT), ports:clear goes back to the default',
    async () => {
      const app = repo('busybox-web');
      expect((await deploy(app.dir, 'porty')).join('\n')).toMatch(
        /web port 5000: the default; the image EXPOSEs no TCP port/,
      );
      const set = await cli(p, ['ports:set', 'porty', '7000']);
      expect(set.code, set.stderr).toBe(0);
      expect(JSON.parse((await cli(p, ['ports', 'porty', '--json'])).stdout)).toMatchObject({
        release: 'v2',
        port: 7000,
        why: 'the PORT config (ports:set)',
      });
      expect((await get(p, 'porty')).status).toBe(200);
      await waitFor('the new PORT in the log', async () =>
        /listening on 7000/.test((await cli(p, ['logs', 'porty', '-n', '200'])).stdout),
      );
      expect((await cli(p, ['ports:set', 'porty', '70000'])).code).not.toBe(0);
      expect((await cli(p, ['ports:clear', 'porty'])).code).toBe(0);
      expect(JSON.parse((await cli(p, ['ports', 'porty', '--json'])).stdout)).toMatchObject({
        release: 'v3',
        port: 5000,
      });
      expect((await get(p, 'porty')).status).toBe(200);
    },
    5 * 60_000,
  );
});

describe.skipIf(SKIP)('custom domains', () => {
  it('domains:add accepts *.example.com and a.b.example.com reaches the app', async () => {
    const add = await cli(p, ['domains:add', 'exposed', '*.example.com']);
    expect(add.code, add.stderr).toBe(0);
    const list = JSON.parse((await cli(p, ['domains', 'exposed', '--json'])).stdout) as {
      custom: string[];
    };
    expect(list.custom).toEqual(['*.example.com']);
    await waitFor(
      'the wildcard route',
      async () => (await getHost('a.b.example.com')).status === 200,
    );
    expect(await getHost('a.b.example.com')).toEqual({ status: 200, body: 'served from 8080\n' });
    expect(await getHost('shop.example.com')).toEqual({ status: 200, body: 'served from 8080\n' });
    // The wildcard covers the names below example.com, not example.com itself.
    expect((await getHost('example.com')).status).toBe(404);
    // A wildcard over a whole top-level domain is refused by the same rule.
    expect((await cli(p, ['domains:add', 'exposed', '*.com'])).code).not.toBe(0);
    expect((await cli(p, ['domains:remove', 'exposed', '*.example.com'])).code).toBe(0);
    await waitFor(
      'the route removed',
      async () => (await getHost('a.b.example.com')).status === 404,
    );
  });
});

// Issue 8's acceptance, end to end: apps without a Dockerfile are pushed with real git to a
// real daemon, built by the buildpack that recognizes them on the real base images
// (provision/base-images: node:22/24/26-slim, debian:bookworm; others built on demand by the
// daemon), and fetched through the router.
// One daemon serves the whole file, so every push after the first shares its layer cache.
// Skipped only with PAAS_SKIP_BASE_IMAGES=1 (building the base images takes minutes).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/host.ts';
import {
  appRepo,
  BUILDPACK_FIXTURES,
  cli,
  FIXTURES,
  get,
  push,
  remoteLines,
  startPaasWithBaseImages,
  type Paas,
  type PushResult,
} from './harness.ts';

const SKIP = process.env.PAAS_SKIP_BASE_IMAGES === '1';

let p: Paas;
beforeAll(async () => {
  if (SKIP) return;
  p = await startPaasWithBaseImages();
}, 45 * 60_000);
const repos: string[] = [];
// Stopping a dozen apps' containers takes more than the default 2 minutes on a loaded box.
afterAll(async () => {
  await p?.cleanup();
  for (const d of repos) rmSync(d, { recursive: true, force: true });
}, 10 * 60_000);

function repo(fixture: string, from = BUILDPACK_FIXTURES): ReturnType<typeof appRepo> {
  const r = appRepo(fixture, undefined, from);
  repos.push(r.dir);
  return r;
}

interface ReleaseJson {
  version: string;
  gitSha: string;
  status: string | null;
  buildpack: string | null;
}
const releases = async (app: string) =>
  JSON.parse((await cli(p, ['releases', app, '--json'])).stdout) as ReleaseJson[];

/** Pushes and expects success, with the push's output in the failure message. */
async function deploy(
  dir: string,
  app: string,
): Promise<{ r: PushResult; lines: string[]; buildSeconds: number }> {
  const r = await push(p, dir, app);
  const lines = remoteLines(r);
  expect(r.code, lines.join('\n')).toBe(0);
  return { r, lines, buildSeconds: buildSeconds(lines) };
}

/** The pipeline's own timing of its build step: `Building done in 12.3s`. */
function buildSeconds(lines: string[]): number {
  const m = lines.map((l) => /Building done in ([0-9.]+)s/.exec(l)).find((x) => x !== null);
  if (m == null) throw new Error(`no "Building done in" line in:\n${lines.join('\n')}`);
  return Number(m[1]);
}

/** The line after the build step whose instruction matches `instruction` (trimmed). */
function lineAfterStep(lines: string[], instruction: RegExp): string | undefined {
  const i = lines.findIndex(
    (l) =>
      /^\s*Step \d+\/\d+ : /.test(l) && instruction.test(l.replace(/^\s*Step \d+\/\d+ : /, '')),
  );
  return i < 0 ? undefined : lines[i + 1]?.trim();
}

/**
 * The files of an image as a container sees them: its layers pulled through the daemon's
 * registry API (/v2/, token as the Basic password) and stacked in order, applying OCI
 * whiteouts (image-spec layer.md §Whiteouts). Paths are relative to / without a leading slash.
 */
async function imageFiles(
  repoName: string,
  tag: string,
): Promise<{ files: Set<string>; config: { User?: string } }> {
  const auth = { authorization: `Basic ${Buffer.from(`paas:${p.token}`).toString('base64')}` };
  const base = `http://127.0.0.1:${p.apiPort}/v2/${repoName}`;
  const mres = await fetch(`${base}/manifests/${tag}`, {
    headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(mres.status, `manifest ${repoName}:${tag}`).toBe(200);
  const manifest = (await mres.json()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const config = (
    (await (await fetch(`${base}/blobs/${manifest.config.digest}`, { headers: auth })).json()) as {
      config: { User?: string };
    }
  ).config;
  const files = new Set<string>();
  for (const layer of manifest.layers) {
    const res = await fetch(`${base}/blobs/${layer.digest}`, { headers: auth });
    expect(res.status, `blob ${layer.digest}`).toBe(200);
    const entries: string[] = [];
    await pipeline(
      Readable.fromWeb(res.body! as import('node:stream/web').ReadableStream),
      tar.t({ onReadEntry: (e) => entries.push(e.path) }),
    );
    for (const raw of entries) {
      const path = raw.replace(/^\.?\//, '').replace(/\/$/, '');
      const slash = path.lastIndexOf('/');
      const dir = slash < 0 ? '' : path.slice(0, slash + 1);
      const name = path.slice(slash + 1);
      if (name === '.wh..wh..opq') {
        for (const f of files) if (f.startsWith(dir)) files.delete(f);
      } else if (name.startsWith('.wh.')) {
        const gone = dir + name.slice(4);
        for (const f of files) if (f === gone || f.startsWith(`${gone}/`)) files.delete(f);
      }
    }
    for (const raw of entries) {
      const path = raw.replace(/^\.?\//, '').replace(/\/$/, '');
      if (path !== '' && !path.split('/').at(-1)!.startsWith('.wh.')) files.add(path);
    }
  }
  return { files, config };
}

describe.skipIf(SKIP)(
  'buildpacks: git push an app without a Dockerfile and curl it through the router',
  () => {
    let express: ReturnType<typeof repo>;
    let coldBuild = 0;

    it(
      'an Express app with package-lock and a Procfile web + worker deploys',
      async () => {
        express = repo('express');
        const { lines, buildSeconds } = await deploy(express.dir, 'express');
        coldBuild = buildSeconds;
        expect(lines.join('\n')).toContain('Building with the node buildpack (package.json found)');
        expect(await get(p, 'express')).toEqual({
          status: 200,
          body: 'hello from express on v24.21.0\n',
        });
        expect((await releases('express'))[0]).toMatchObject({
          version: 'v1',
          status: 'succeeded',
          buildpack: 'node',
        });
      },
      10 * 60_000,
    );

    it("and the Procfile's worker runs from the same release", async () => {
      // As on Heroku and Dokku, only web runs by default; the operator scales other types.
      expect((await cli(p, ['ps:scale', 'express', 'worker=1'])).code).toBe(0);
      // The worker prints one line and exits: its log is the proof it ran from the release.
      await waitFor('worker.1 to log "worker up"', async () => {
        const out = (await cli(p, ['logs', 'express', '--ps', 'worker', '-n', '100'])).stdout;
        return /app\[worker\.1\]: worker up, express 5\.\d+\.\d+, NODE_ENV=production$/m.test(out)
          ? out
          : null;
      }).catch(async (e: Error) => {
        throw new Error(
          `${e.message}; paas ps express:\n${(await cli(p, ['ps', 'express'])).stdout}`,
        );
      });
      expect((await cli(p, ['ps:scale', 'express', 'worker=0'])).code).toBe(0);
    });

    it(
      'a code-only second push reuses the dependency layer: cached install, new code',
      async () => {
        express.write(
          'server.js',
          "const express = require('express');\n\nconst app = express();\napp.get('/', (_req, res) => res.send(`second push on ${process.version}\\n`));\napp.listen(Number(process.env.PORT) || 5000);\n",
        );
        express.commit('code only');
        const warm = await deploy(express.dir, 'express');
        const out = warm.lines.join('\n');
        expect(lineAfterStep(warm.lines, /^RUN npm ci/), out).toBe('---> Using cache');
        expect(lineAfterStep(warm.lines, /^COPY (--chown=\S+ )?\. /), out).not.toBe(
          '---> Using cache',
        );
        expect(await get(p, 'express')).toEqual({ status: 200, body: 'second push on v24.21.0\n' });
        console.log(
          `express build: first push ${coldBuild}s, code-only push ${warm.buildSeconds}s (${(warm.buildSeconds / coldBuild).toFixed(2)}x)`,
        );
      },
      10 * 60_000,
    );

    it(
      'engines.node "22.x" runs Node 22',
      async () => {
        const { lines } = await deploy(repo('node22').dir, 'node22');
        expect(lines).toContainEqual(expect.stringMatching(/warning: no lockfile/));
        const r = await get(p, 'node22');
        expect(r.status).toBe(200);
        expect(r.body).toMatch(/^v22\.\d+\.\d+\n$/);
      },
      10 * 60_000,
    );

    // Issue 16: any Node release builds. Node 18 and 20.17.0 are not built at install: the
    // first push asking for one prepares its base image (and says so); an end-of-life major
    // builds with a loud warning instead of a refusal.
    it.each([
      ['18.x', /^v18\.\d+\.\d+\n$/, 18],
      ['20.17.x', /^v20\.17\.\d+\n$/, 20],
      ['24.x', /^v24\.\d+\.\d+\n$/, null],
    ])(
      'engines.node "%s" deploys on that release',
      async (range, version, eolMajor) => {
        const app = repo('node22');
        app.write(
          'package.json',
          JSON.stringify({ name: 'engines', main: 'index.js', engines: { node: range } }),
        );
        app.commit(`engines.node ${range}`);
        const name = `engines${range.replace(/\W/g, '')}`;
        const { lines } = await deploy(app.dir, name);
        const eol = lines.filter((l) => /warning: Node \d+ is END-OF-LIFE/.test(l));
        if (eolMajor === null) expect(eol).toEqual([]);
        else {
          expect(eol).toEqual([
            expect.stringContaining(`warning: Node ${eolMajor} is END-OF-LIFE (since `),
          ]);
          // Built on demand, the first time a build asks for it on this box.
          const from = lines.find((l) => /Step 1\/\d+ : FROM node:/.test(l)) ?? '';
          const tag = /FROM node:(\S+) AS base/.exec(from)?.[1];
          expect(tag, lines.join('\n')).toMatch(new RegExp(`^${eolMajor}\\.\\d+\\.\\d+-slim$`));
        }
        const r = await get(p, name);
        expect(r.status).toBe(200);
        expect(r.body).toMatch(version);
      },
      30 * 60_000,
    );

    it.each([
      ['yarn', 'yarn app: 2m\n'],
      ['pnpm', 'pnpm app: 2m\n'],
    ])(
      'a %s app deploys',
      async (fixture, body) => {
        const { lines } = await deploy(repo(fixture).dir, fixture);
        expect(lines.some((l) => l.includes(`corepack enable ${fixture}`))).toBe(true);
        expect(await get(p, fixture)).toEqual({ status: 200, body });
      },
      10 * 60_000,
    );

    it(
      'a TypeScript app with a build script deploys; its image has no dev dependencies',
      async () => {
        const { lines } = await deploy(repo('typescript').dir, 'tsapp');
        expect(lines).toContainEqual(expect.stringMatching(/Step \d+\/\d+ : RUN npm run build$/));
        expect(await get(p, 'tsapp')).toEqual({ status: 200, body: 'typescript app, compiled\n' });
        // No `paas run` yet (issue 7): read the released image's layers from the registry API.
        const { files, config } = await imageFiles('tsapp', 'v1');
        expect(config.User).toBe('app');
        expect(files.has('app/dist/server.js')).toBe(true);
        const top = [...files]
          .filter((f) => /^app\/node_modules\/[^/]+$/.test(f))
          .map((f) => f.slice('app/node_modules/'.length))
          .filter((f) => !f.startsWith('.'));
        expect(top).toEqual(['ms']);
        expect(
          [...files].filter(
            (f) => /(^|\/)node_modules\/(typescript|@types)(\/|$)/.test(f) && f.startsWith('app/'),
          ),
        ).toEqual([]);
      },
      10 * 60_000,
    );

    it(
      "an app's own Dockerfile wins over its package.json; releases record 'dockerfile', and a config change keeps it",
      async () => {
        const app = repo('busybox-web', FIXTURES);
        app.write(
          'package.json',
          JSON.stringify({ name: 'has-a-dockerfile', scripts: { start: 'node x.js' } }),
        );
        app.commit('a package.json beside the Dockerfile');
        const { lines } = await deploy(app.dir, 'ownfile');
        expect(lines.join('\n')).toContain(
          "Building with the app's Dockerfile (Dockerfile found at the repository root)",
        );
        expect(await get(p, 'ownfile')).toEqual({ status: 200, body: 'hello from v1\n' });
        const set = await cli(p, ['config:set', 'ownfile', 'GREETING=hi']);
        expect(set.code, set.stderr).toBe(0);
        expect((await releases('ownfile')).map((r) => [r.version, r.buildpack])).toEqual([
          ['v2', 'dockerfile'],
          ['v1', 'dockerfile'],
        ]);
      },
      5 * 60_000,
    );

    let site: ReturnType<typeof repo>;

    it(
      'a static site serves its index, an asset and its 404 page',
      async () => {
        site = repo('static');
        const { lines } = await deploy(site.dir, 'site');
        expect(lines.join('\n')).toContain(
          'Building with the static buildpack (static.json found)',
        );
        const index = await get(p, 'site', '/');
        expect(index.status).toBe(200);
        expect(index.body).toContain('Hello from a static site');
        const css = await get(p, 'site', '/assets/app.css');
        expect(css.status).toBe(200);
        expect(css.body).toContain('#123456');
        const missing = await get(p, 'site', '/no/such/page');
        expect(missing.status).toBe(404);
        expect(missing.body).toContain('custom 404');
        expect((await releases('site'))[0]).toMatchObject({ version: 'v1', buildpack: 'static' });
        expect((await cli(p, ['releases', 'site'])).stdout).toMatch(
          /^VERSION\s+GIT SHA\s+BUILDPACK\s.*\nv1\s+[0-9a-f]{7}\s+static\s/,
        );
      },
      10 * 60_000,
    );

    it(
      'a repository matching nothing fails the push, saying what was looked for; the live release is unchanged',
      async () => {
        // The static site's next commit replaces it with files no buildpack recognizes.
        for (const f of ['public', 'static.json', 'secret.txt'])
          rmSync(join(site.dir, f), { recursive: true, force: true });
        execFileSync('cp', ['-r', `${join(BUILDPACK_FIXTURES, 'nothing')}/.`, site.dir]);
        site.commit('nothing to build');
        const before = await releases('site');
        const r = await push(p, site.dir, 'site');
        expect(r.code).not.toBe(0);
        const text = remoteLines(r).join('\n');
        expect(text).toMatch(
          /push failed: no buildpack matched: looked for a Dockerfile, package\.json \(node\), static\.json or index\.html \(static\), Procfile \(procfile\)/,
        );
        expect(remoteLines(r).at(-1)).toContain('v1 is still live');
        expect(await releases('site')).toEqual(before);
        expect(JSON.parse((await cli(p, ['apps:info', 'site', '--json'])).stdout).release).toBe(
          'v1',
        );
        const index = await get(p, 'site', '/');
        expect(index.status).toBe(200);
        expect(index.body).toContain('Hello from a static site');
        const builds = JSON.parse((await cli(p, ['builds', 'site', '--json'])).stdout) as {
          status: string;
          error: string | null;
        }[];
        expect(builds[0]).toMatchObject({ status: 'failed' });
        expect(builds[0]!.error).toContain('no buildpack matched');
      },
      5 * 60_000,
    );
  },
);

describe.skipIf(!SKIP)('buildpacks end to end', () => {
  it.skip('skipped: PAAS_SKIP_BASE_IMAGES=1 — these push apps built on node:22/24 and debian:bookworm from provision/base-images', () =>
    undefined);
});

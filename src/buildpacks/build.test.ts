// Buildpack builds with the real builder and runtime on the real base images
// (provision/base-images: node:22/24/26-slim, debian:bookworm): each fixture app is detected,
// rendered, built, and its processes run; web processes are fetched over the bridge network.
// Skipped only with PAAS_SKIP_BASE_IMAGES=1 (the base images take minutes the first time).
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildResult } from '../builder/index.ts';
import { testRuntimeName } from '../builder/harness.ts';
import { openStore, type Image, type ImageStore } from '../registry/index.ts';
import { createRuntime, type Runtime } from '../runtime/index.ts';
import { FIXTURES } from './contract.case.ts';
import { describeChoice, detect, writeBuildpackFiles, type BuildChoice } from './index.ts';

const run = promisify(execFile);
const SKIP = process.env.PAAS_SKIP_BASE_IMAGES === '1';
const script = path.resolve(import.meta.dirname, '../../provision/base-images');

let dataDir: string;
let store: ImageStore;
let runtime: Runtime;
const contexts: string[] = [];

beforeAll(async () => {
  if (SKIP) return;
  dataDir = mkdtempSync('/var/tmp/paas-bp-build-');
  await run(script, ['--data-dir', dataDir, '--only', 'debian,node', '--quiet'], {
    timeout: 40 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  store = await openStore(dataDir);
  runtime = createRuntime(testRuntimeName(), { dataDir });
}, 45 * 60_000);

afterAll(async () => {
  if (SKIP) return;
  for (const c of await runtime.list())
    await runtime.remove(c.id, { force: true }).catch(() => undefined);
  for (const d of contexts) rmSync(d, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

type Built = {
  choice: BuildChoice;
  result: BuildResult;
  lines: string[];
  seconds: number;
  ctx: string;
};

function copyFixture(name: string): string {
  const ctx = mkdtempSync('/var/tmp/paas-bp-ctx-');
  contexts.push(ctx);
  cpSync(path.join(FIXTURES, name), ctx, { recursive: true });
  return ctx;
}

/** What the pipeline does: detect, print the choice, write the buildpack's files, build. */
async function buildApp(ctx: string, repo: string): Promise<Built> {
  const choice = detect(ctx);
  const lines = [describeChoice(choice), ...choice.warnings.map((w) => `warning: ${w}`)];
  writeBuildpackFiles(ctx, choice);
  const t = performance.now();
  const result = await build({
    contextDir: ctx,
    dockerfile: choice.dockerfile ?? undefined,
    tag: { repo, tag: 'latest' },
    runtime,
    store,
    dataDir,
    onLine: (l) => lines.push(l),
  });
  return { choice, result, lines, seconds: (performance.now() - t) / 1000, ctx };
}

function envOf(image: Image, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of image.config.Env ?? []) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { ...env, ...extra };
}

/** Runs a command in the image as a release would (its env, workdir and user). */
async function exec(
  image: Image,
  command: string[],
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const c = image.config;
  return runtime.run(
    {
      rootfs: { lowers: await store.layerDirs(image) },
      command,
      env: envOf(image),
      cwd: c.WorkingDir || '/',
      user: c.User || '0',
      net: 'none',
    },
    { stdio: 'pipe' },
  );
}

/** Starts a process of the image on the bridge network and fetches `paths` from it. */
async function serve(image: Image, command: string[], paths: string[]): Promise<Response[]> {
  const c = image.config;
  const info = await runtime.create({
    rootfs: { lowers: await store.layerDirs(image) },
    command,
    env: envOf(image, { PORT: '5000' }),
    cwd: c.WorkingDir || '/',
    user: c.User || '0',
    net: 'bridge',
  });
  try {
    const started = await runtime.start(info.id);
    const base = `http://${started.ip}:5000`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await fetch(`${base}/`, { signal: AbortSignal.timeout(1000) });
        break;
      } catch (e) {
        if (Date.now() > deadline)
          throw new Error(
            `${command.join(' ')} did not answer on ${base}: ${String(e)}\n${await logOf(info.logPath)}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const out: Response[] = [];
    for (const p of paths) {
      const r = await fetch(`${base}${p}`, { redirect: 'manual' });
      // Read the body now: the container goes away when this returns.
      const body = await r.text();
      out.push(
        new Response(r.status === 304 ? null : body, { status: r.status, headers: r.headers }),
      );
    }
    return out;
  } finally {
    await runtime.remove(info.id, { force: true });
  }
}

async function logOf(file: string): Promise<string> {
  return (await import('node:fs/promises')).readFile(file, 'utf8').catch(() => '');
}

const sh = (cmd: string): string[] => ['/bin/sh', '-c', cmd];

describe.skipIf(SKIP)('buildpack builds on the real base images', () => {
  let express: Built;

  it(
    'an Express app with package-lock and a Procfile (web + worker) builds; both processes run as non-root',
    async () => {
      express = await buildApp(copyFixture('express'), 'bp/express');
      expect(express.lines[0]).toBe('Building with the node buildpack (package.json found)');
      expect(express.choice.processTypes).toEqual({
        web: 'node server.js',
        worker: 'node worker.js',
      });
      const img = express.result.image;
      expect(img.config.User).toBe('app');
      const worker = await exec(img, sh(`WORKER_ONCE=1 ${express.choice.processTypes!.worker!}`));
      expect(worker.stdout).toMatch(/^worker up, express 5\.\d+\.\d+, NODE_ENV=production$/m);
      expect((await exec(img, ['id', '-u'])).stdout.trim()).toBe('999');
      const [home] = await serve(img, sh(express.choice.processTypes!.web!), ['/']);
      expect(home!.status).toBe(200);
      expect(await home!.text()).toBe('hello from express on v24.21.0\n');
      // Slim: the final image has no compiler.
      expect((await exec(img, sh('command -v g++ make python3 || echo none'))).stdout.trim()).toBe(
        'none',
      );
    },
    10 * 60_000,
  );

  it(
    'a code-only push reuses the dependency layer: output says cached, the code step runs',
    async () => {
      const ctx = express.ctx;
      writeFileSync(
        path.join(ctx, 'server.js'),
        `// a code change\n${await (await import('node:fs/promises')).readFile(path.join(ctx, 'server.js'), 'utf8')}`,
      );
      const again = await buildApp(ctx, 'bp/express');
      const install = again.result.steps.find((s) => s.instruction.startsWith('RUN npm ci'));
      expect(install?.cached).toBe(true);
      const i = again.lines.findIndex((l) => /^Step \d+\/\d+ : RUN npm ci/.test(l));
      expect(again.lines[i + 1]).toBe(' ---> Using cache');
      const copyCode = again.result.steps.find((s) =>
        /^COPY (--chown=\S+ )?\. /.test(s.instruction),
      );
      expect(copyCode?.cached).toBe(false);
      expect(again.result.image.digest).not.toBe(express.result.image.digest);
      const [home] = await serve(again.result.image, sh('node server.js'), ['/']);
      expect(await home!.text()).toBe('hello from express on v24.21.0\n');
    },
    5 * 60_000,
  );

  it(
    'engines.node "22.x" runs Node 22 (no lockfile: npm install, with a warning)',
    async () => {
      const b = await buildApp(copyFixture('node22'), 'bp/node22');
      expect(b.lines).toContainEqual(expect.stringMatching(/^warning: no lockfile/));
      expect((await exec(b.result.image, ['node', '-p', 'process.version'])).stdout.trim()).toMatch(
        /^v22\.\d+\.\d+$/,
      );
      const [home] = await serve(b.result.image, b.result.image.config.Cmd!, ['/']);
      expect(await home!.text()).toMatch(/^v22\.\d+\.\d+\n$/);
    },
    15 * 60_000,
  );

  it.each([
    ['yarn', 'yarn app: 2m\n'],
    ['pnpm', 'pnpm app: 2m\n'],
  ])(
    'a %s app builds (corepack) and runs',
    async (fixture, body) => {
      const b = await buildApp(copyFixture(fixture), `bp/${fixture}`);
      expect(b.result.steps.some((s) => s.instruction.includes(`corepack enable ${fixture}`))).toBe(
        true,
      );
      const [home] = await serve(b.result.image, b.result.image.config.Cmd!, ['/']);
      expect(home!.status).toBe(200);
      expect(await home!.text()).toBe(body);
      // Installed by the build stage, not the final image: the build's corepack home (its
      // package manager downloads) stays behind, and the final image has only the package
      // managers its base ships, as the official node image does (npm, yarn 1, corepack).
      expect(
        (
          await exec(b.result.image, sh('ls -d /opt/corepack 2>/dev/null || echo none'))
        ).stdout.trim(),
      ).toBe('none');
      expect((await exec(b.result.image, sh('command -v pnpm || echo none'))).stdout.trim()).toBe(
        'none',
      );
    },
    15 * 60_000,
  );

  it(
    'a TypeScript app with a build script builds, runs its compiled output, and has no dev dependencies',
    async () => {
      const b = await buildApp(copyFixture('typescript'), 'bp/typescript');
      expect(b.lines).toContainEqual(expect.stringMatching(/^Step \d+\/\d+ : RUN npm run build$/));
      const img = b.result.image;
      expect((await exec(img, ['ls', 'node_modules'])).stdout.trim().split('\n')).toEqual(['ms']);
      expect(
        (
          await exec(
            img,
            sh(
              'test -e node_modules/typescript || test -e node_modules/@types && echo dev || echo none',
            ),
          )
        ).stdout.trim(),
      ).toBe('none');
      expect((await exec(img, ['ls', 'dist'])).stdout.trim()).toBe('server.js');
      const [home] = await serve(img, img.config.Cmd!, ['/']);
      expect(await home!.text()).toBe('typescript app, compiled\n');
    },
    10 * 60_000,
  );

  it(
    'a static site serves index, assets and its 404 page',
    async () => {
      const b = await buildApp(copyFixture('static'), 'bp/static');
      expect(b.lines[0]).toBe('Building with the static buildpack (static.json found)');
      const [index, css, about, missing, secret] = await serve(
        b.result.image,
        b.result.image.config.Cmd!,
        ['/', '/assets/app.css', '/about', '/no/such/page', '/secret.txt'],
      );
      expect(index!.status).toBe(200);
      expect(await index!.text()).toContain('Hello from a static site');
      expect(css!.status).toBe(200);
      expect(css!.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(await css!.text()).toContain('#123456');
      expect(await about!.text()).toContain('about this static site');
      expect(missing!.status).toBe(404);
      expect(await missing!.text()).toContain('custom 404');
      expect(secret!.status).toBe(404);
    },
    10 * 60_000,
  );

  it(
    'a Procfile app builds on Debian and runs its processes from /app',
    async () => {
      const b = await buildApp(copyFixture('procfile'), 'bp/procfile');
      const worker = await exec(b.result.image, sh(b.choice.processTypes!.worker!));
      expect(worker.stdout.trim()).toBe('procfile worker on bookworm as app');
      const [home] = await serve(b.result.image, sh(b.choice.processTypes!.web!), ['/']);
      expect(await home!.text()).toBe('hello from a Procfile app\n');
    },
    10 * 60_000,
  );

  it('a repository matching nothing fails before building, saying what was looked for', async () => {
    await expect(buildApp(copyFixture('nothing'), 'bp/nothing')).rejects.toThrow(
      /^no buildpack matched: looked for a Dockerfile, package\.json \(node\), static\.json or index\.html \(static\), Procfile \(procfile\)/,
    );
  });
});

describe.skipIf(!SKIP)('buildpack builds', () => {
  it.skip('skipped: PAAS_SKIP_BASE_IMAGES=1 — these build on node:22/24 and debian:bookworm from provision/base-images', () =>
    undefined);
});

// Deploy speed (issue 7): push → new release serving for a code-only change of the Express
// fixture (test/fixtures/buildpacks/express, dependencies unchanged), on a real daemon with
// real git and HTTP through the router; and time-to-first-200 of that app started in our
// runtime vs the same server.js as a bare `node` process on the host, and vs `docker run` of
// the very same release image (`docker load`ed from our store) on a private dockerd (when none
// can start, MEASURED.md's figure, labelled as such).
// Goals: redeploy < 2 s; first 200 ≤ 1.2x bare node.
//   node bench/deploy.ts [--runs N]
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processEnv } from '../src/deploy/index.ts';
import { openStore, type Image, type ImageStore } from '../src/registry/index.ts';
import { createRuntime } from '../src/runtime/index.ts';
import { appRepo, freePort, get, push, startPaas } from '../test/e2e/harness.ts';
import { docker, dockerLoad, table, withDockerd, type Dockerd } from './lib.ts';

const repo = path.join(import.meta.dirname, '..');
const fixture = path.join(repo, 'test/fixtures/buildpacks/express');
const CACHE = path.join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base');
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Math.max(1, Number(args.runs));
const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(path.join(CACHE, 'node-24', 'index.json'))) {
  console.log(
    `bench/deploy: skipped: ${CACHE}/node-24 does not exist; run provision/base-images --data-dir D --only node`,
  );
  process.exit(0);
}

/** Polls url until it answers 200; ms from t0. */
async function firstOk(
  url: string,
  t0: number,
  timeoutMs = 30_000,
  expect?: string,
): Promise<number> {
  for (;;) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = await r.text();
      if (r.status === 200 && (expect === undefined || body.includes(expect)))
        return performance.now() - t0;
    } catch {
      // not up yet
    }
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(2);
  }
}

/**
 * First 200 of the release image under `docker run -d`, same command and env as ours. The
 * private engine has no bridge (test/helpers/dockerd.ts), so it runs on the host network on
 * a free PORT: that skips the veth and address setup our bridge start pays, favouring docker.
 */
async function dockerFirstOk(
  d: Dockerd,
  store: ImageStore,
  ref: string,
  image: Image,
  command: string[],
  env: Record<string, string>,
): Promise<{ ms: number[]; net: string }> {
  await dockerLoad(d, store, ref);
  const bridge = (await d.docker(['network', 'inspect', 'bridge'])).code === 0;
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = await freePort();
    const net = bridge ? ['-p', `127.0.0.1:${port}:${env.PORT}`] : ['--network', 'host'];
    const envArgs = Object.entries(bridge ? env : { ...env, PORT: String(port) }).flatMap(
      ([k, v]) => ['-e', `${k}=${v}`],
    );
    const t0 = performance.now();
    // Docker's image ID is the config digest: the very image we ran, not a conversion of it.
    const id = (
      await docker(d, ['run', '-d', '--rm', ...envArgs, ...net, image.configDigest, ...command])
    ).trim();
    ms.push(await firstOk(`http://127.0.0.1:${port}/`, t0));
    await docker(d, ['rm', '-f', id]);
  }
  return { ms, net: bridge ? 'bridge' : 'host network' };
}

const p = await startPaas({
  prepare: async (dataDir) => {
    const store = await openStore(dataDir);
    await store.importOciLayout(path.join(CACHE, 'node-24'), ['library/node:24']);
  },
});
const hostDir = mkdtempSync(path.join(tmpdir(), 'paas-bench-node-'));
try {
  const app = appRepo('express', undefined, path.join(repo, 'test/fixtures/buildpacks'));
  const first = await push(p, app.dir, 'bench');
  if (first.code !== 0) throw new Error(`first push failed:\n${first.stderr}`);

  // 1. Code-only redeploys: git push until the router serves the new code.
  const redeploys: number[] = [];
  const server = readFileSync(path.join(fixture, 'server.js'), 'utf8');
  for (let i = 1; i <= runs; i++) {
    const marker = `change-${i}-${Date.now()}`;
    app.write('server.js', server.replace('hello from express', `hello from express ${marker}`));
    app.commit(marker);
    const t0 = performance.now();
    const r = await push(p, app.dir, 'bench');
    if (r.code !== 0) throw new Error(`push ${i} failed:\n${r.stderr}`);
    for (;;) {
      const g = await get(p, 'bench');
      if (g.body.includes(marker)) break;
      if (performance.now() - t0 > 60_000) throw new Error('the new release never served');
    }
    redeploys.push(performance.now() - t0);
  }

  // 2. Time to first 200 after start: the live release's image in our runtime.
  const releases = JSON.parse(
    execFileSync(path.join(repo, 'bin/paas'), ['releases', 'bench', '--json'], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    }).toString(),
  ) as { version: string; image: string }[];
  const store = await openStore(p.dataDir);
  const image = await store.resolveImage(releases[0]!.image);
  const lowers = await store.layerDirs(image);
  const rt = createRuntime('native', { dataDir: p.dataDir });
  const release = { app: 'bench', version: 0, config: {} } as unknown as Parameters<
    typeof processEnv
  >[1];
  const command = ['/bin/sh', '-c', 'node server.js'];
  const env = processEnv(image.config.Env, release, 'web');
  const oursMs: number[] = [];
  // Where the time goes: runtime.create (bundle, cgroups, network), runtime.start (the
  // shim up to the app's exec), then the app itself until it answers.
  const phases = { create: [] as number[], start: [] as number[], listen: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const c = await rt.create({
      rootfs: { lowers },
      command,
      env,
      cwd: image.config.WorkingDir || '/',
      user: image.config.User || undefined,
      net: 'bridge',
      labels: { bench: '1' },
    });
    const t1 = performance.now();
    const info = await rt.start(c.id);
    const t2 = performance.now();
    oursMs.push(await firstOk(`http://${info.ip}:5000/`, t0));
    phases.create.push(t1 - t0);
    phases.start.push(t2 - t1);
    phases.listen.push(performance.now() - t2);
    await rt.remove(c.id, { force: true });
  }

  // 3. The same server.js as a bare node process on the host (its dependencies installed once).
  cpSync(fixture, hostDir, { recursive: true });
  execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--silent'], {
    cwd: hostDir,
    stdio: 'ignore',
  });
  const bareMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const child = spawn(process.execPath, ['server.js'], {
      cwd: hostDir,
      env: { ...process.env, PORT: String(port) },
      stdio: 'ignore',
    });
    bareMs.push(await firstOk(`http://127.0.0.1:${port}/`, t0));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }

  // 4. docker run of the same image.
  const dockerRun = await withDockerd((d) =>
    d === null
      ? Promise.resolve(null)
      : dockerFirstOk(d, store, releases[0]!.image, image, command, env),
  );
  const dockerMs = dockerRun === null ? 420 : median(dockerRun.ms);

  const bare = median(bareMs);
  console.log(
    table([
      ['figure', 'median', 'runs (ms)', 'goal'],
      [
        'push → new release serving (code-only, deps unchanged)',
        `${(median(redeploys) / 1000).toFixed(2)} s`,
        redeploys.map((x) => x.toFixed(0)).join(' '),
        '< 2 s',
      ],
      [
        'first 200 after start: paas runtime (create+start+listen)',
        `${median(oursMs).toFixed(0)} ms`,
        oursMs.map((x) => x.toFixed(0)).join(' '),
        `${(median(oursMs) / bare).toFixed(2)}x bare node (≤ 1.2x)`,
      ],
      [
        '  of which create / start / app until 200',
        `${median(phases.create).toFixed(0)} / ${median(phases.start).toFixed(0)} / ${median(phases.listen).toFixed(0)} ms`,
        '',
        '',
      ],
      [
        'first 200 after start: bare node on the host',
        `${bare.toFixed(0)} ms`,
        bareMs.map((x) => x.toFixed(0)).join(' '),
        '(MEASURED.md: ~140 ms)',
      ],
      dockerRun === null
        ? [
            'first 200 after start: docker run',
            '~420 ms (MEASURED.md, not this run: no private dockerd)',
            '',
            `paas ${(median(oursMs) / dockerMs).toFixed(2)}x docker`,
          ]
        : [
            `first 200 after start: docker run (${dockerRun.net})`,
            `${dockerMs.toFixed(0)} ms`,
            dockerRun.ms.map((x) => x.toFixed(0)).join(' '),
            `paas ${(median(oursMs) / dockerMs).toFixed(2)}x docker`,
          ],
    ]),
  );
} finally {
  rmSync(hostDir, { recursive: true, force: true });
  await p.cleanup();
}

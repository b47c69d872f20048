// Deploy speed (issue 7): push → new release serving for a code-only change of the Express
// fixture (test/fixtures/buildpacks/express, dependencies unchanged), on a real daemon with
// real git and HTTP through the router; and time-to-first-200 of that app started in our
// runtime vs the same server.js as a bare `node` process on the host, and vs `docker run`
// when a Docker engine answers (else MEASURED.md's figures, labelled as such).
// Goals: redeploy < 2 s; first 200 ≤ 1.2x bare node.
//   node bench/deploy.ts [--runs N]
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processEnv } from '../src/deploy/index.ts';
import { openStore } from '../src/registry/index.ts';
import { createRuntime } from '../src/runtime/index.ts';
import { appRepo, freePort, get, push, startPaas } from '../test/e2e/harness.ts';
import { table } from './lib.ts';

const repo = path.join(import.meta.dirname, '..');
const fixture = path.join(repo, 'test/fixtures/buildpacks/express');
const CACHE = path.join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base');
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Math.max(1, Number(args.runs));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(path.join(CACHE, 'node-24', 'index.json'))) {
  console.log(`bench/deploy: skipped: ${CACHE}/node-24 does not exist; run provision/base-images --data-dir D --only node`);
  process.exit(0);
}

/** Polls url until it answers 200; ms from t0. */
async function firstOk(url: string, t0: number, timeoutMs = 30_000, expect?: string): Promise<number> {
  for (;;) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = await r.text();
      if (r.status === 200 && (expect === undefined || body.includes(expect))) return performance.now() - t0;
    } catch {
      // not up yet
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(2);
  }
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
  const releases = JSON.parse(execFileSync(path.join(repo, 'bin/paas'), ['releases', 'bench', '--json'], {
    env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
  }).toString()) as { version: string; image: string }[];
  const store = await openStore(p.dataDir);
  const image = await store.resolveImage(releases[0]!.image);
  const lowers = await store.layerDirs(image);
  const rt = createRuntime('native', { dataDir: p.dataDir });
  const release = { app: 'bench', version: 0, config: {} } as unknown as Parameters<typeof processEnv>[1];
  const oursMs: number[] = [];
  // Where the time goes: runtime.create (bundle, cgroups, network), runtime.start (the
  // shim up to the app's exec), then the app itself until it answers.
  const phases = { create: [] as number[], start: [] as number[], listen: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const c = await rt.create({
      rootfs: { lowers }, command: ['/bin/sh', '-c', 'node server.js'], env: processEnv(image.config.Env, release, 'web'),
      cwd: image.config.WorkingDir || '/', user: image.config.User || undefined, net: 'bridge', labels: { bench: '1' },
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
  execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--silent'], { cwd: hostDir, stdio: 'ignore' });
  const bareMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const child = spawn(process.execPath, ['server.js'], { cwd: hostDir, env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    bareMs.push(await firstOk(`http://127.0.0.1:${port}/`, t0));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }

  // 4. docker run, when an engine answers.
  let docker: string;
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    writeFileSync(path.join(hostDir, 'Dockerfile'), 'FROM node:24-slim\nWORKDIR /app\nCOPY . .\nCMD ["node", "server.js"]\n');
    execFileSync('docker', ['build', '-q', '-t', 'paas-bench-deploy', hostDir], { stdio: 'ignore' });
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      const port = await freePort();
      const t0 = performance.now();
      const id = execFileSync('docker', ['run', '-d', '--rm', '-e', 'PORT=5000', '-p', `127.0.0.1:${port}:5000`, 'paas-bench-deploy']).toString().trim();
      ms.push(await firstOk(`http://127.0.0.1:${port}/`, t0));
      execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
    }
    docker = `${median(ms).toFixed(0)} ms (this run)`;
  } catch {
    docker = '~420 ms (MEASURED.md; no Docker engine answers here)';
  }

  const bare = median(bareMs);
  console.log(table([
    ['figure', 'median', 'runs (ms)', 'goal'],
    ['push → new release serving (code-only, deps unchanged)', `${(median(redeploys) / 1000).toFixed(2)} s`, redeploys.map((x) => x.toFixed(0)).join(' '), '< 2 s'],
    ['first 200 after start: paas runtime (create+start+listen)', `${median(oursMs).toFixed(0)} ms`, oursMs.map((x) => x.toFixed(0)).join(' '), `${(median(oursMs) / bare).toFixed(2)}x bare node (≤ 1.2x)`],
    ['  of which create / start / app until 200', `${median(phases.create).toFixed(0)} / ${median(phases.start).toFixed(0)} / ${median(phases.listen).toFixed(0)} ms`, '', ''],
    ['first 200 after start: bare node on the host', `${bare.toFixed(0)} ms`, bareMs.map((x) => x.toFixed(0)).join(' '), '(MEASURED.md: ~140 ms)'],
    ['first 200 after start: docker run', docker, '', ''],
  ]));
} finally {
  rmSync(hostDir, { recursive: true, force: true });
  await p.cleanup();
}

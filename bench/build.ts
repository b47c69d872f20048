// Image build of a small Express app (test/fixtures/build/express: `npm ci` of express on
// node:24), with paas and `docker build --network host` on a private dockerd, in the same run:
// cold (no cache), warm-unchanged, and a code-only change. Docker gets the same node:24 from
// our store (`docker load`); when no dockerd can start, its figures are MEASURED.md's, labelled.
// Goals: cold ≤ 1.0x docker, code-only ≤ 0.5x docker.
//   node bench/build.ts [--data-dir DIR] [--runtime native|runc] [--runs N]
// The node:24 base image comes from the data dir's store, else from provision/base-images'
// cached OCI layout (/var/cache/paas/base/node-24); without either the bench says so and exits.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, CA_TARGET, caEnv, HOST_CA_BUNDLE, type BuildResult } from '../src/build/index.ts';
import { openStore, type ImageStore } from '../src/registry/index.ts';
import { createRuntime } from '../src/runtime/index.ts';
import { baseLayout, buildBenchArgs, docker, dockerLoad, ensureBaseImage, fixtureContext, median, table, withDockerd, type Dockerd } from './lib.ts';

const repo = path.join(import.meta.dirname, '..');
const fixture = path.join(repo, 'test/fixtures/build/express');
const args = buildBenchArgs('paas-bench-build-');
const { runs, ownDataDir, dataDir } = args;
const BASE = 'library/node:24';
const LAYOUT = baseLayout('node-24');

/**
 * `npm ci` of the same app straight on the host with an empty npm cache: most of a cold
 * build is this download, and the registry's speed moves between runs more than any builder.
 */
function hostNpmCi(): number | null {
  const dir = mkdtempSync('/var/tmp/paas-bench-npm-');
  try {
    cpSync(fixture, dir, { recursive: true });
    const t = performance.now();
    const r = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--cache', path.join(dir, '.npm-cache')], { cwd: dir, stdio: 'ignore' });
    return r.status === 0 ? (performance.now() - t) / 1000 : null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}


/**
 * The fixture's Dockerfile as docker builds it, with what our builder gives every RUN and
 * nothing more: the host's CA bundle read-only at the distro path (a BuildKit secret mount:
 * present for that RUN only, in no layer and no cache key, like our bind mount) and
 * SSL_CERT_FILE/NODE_EXTRA_CA_CERTS/npm_config_cafile pointing at it (build args: env for
 * RUN, kept out of the image config, like our caEnv). npm needs it: egress here goes through
 * a TLS-intercepting proxy whose CA only the host's bundle holds.
 */
function dockerfileForDocker(): { text: string; buildArgs: string[] } {
  if (!existsSync(HOST_CA_BUNDLE)) return { text: readFileSync(path.join(fixture, 'Dockerfile'), 'utf8'), buildArgs: [] };
  const env = caEnv();
  const text = readFileSync(path.join(fixture, 'Dockerfile'), 'utf8').split('\n').map((line) => {
    if (/^FROM\s/i.test(line)) return [line, ...Object.keys(env).map((k) => `ARG ${k}`)].join('\n');
    if (/^RUN\s/i.test(line)) return line.replace(/^RUN\s+/i, `RUN --mount=type=secret,id=hostca,target=${CA_TARGET} `);
    return line;
  }).join('\n');
  return { text, buildArgs: ['--secret', `id=hostca,src=${HOST_CA_BUNDLE}`, ...Object.entries(env).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`])] };
}

type Figures = { cold: number; unchanged: number; codeOnly: number | null; label: string };

/**
 * `docker build` of the same context on the same base. BuildKit (Docker's builder since 23.0;
 * this engine is 20.10, where DOCKER_BUILDKIT=1 selects it) so RUN can mount the CA bundle.
 */
async function dockerFigures(d: Dockerd, store: ImageStore, touchCode: () => void): Promise<Figures> {
  await dockerLoad(d, store, BASE);
  const dir = mkdtempSync('/var/tmp/paas-bench-dockerfile-');
  try {
    const { text, buildArgs } = dockerfileForDocker();
    const dockerfile = path.join(dir, 'Dockerfile');
    // Outside the context, so both builders COPY the very same files.
    writeFileSync(dockerfile, text);
    const once = async (noCache: boolean): Promise<number> => {
      const t = performance.now();
      const args = ['build', '--network', 'host', ...(noCache ? ['--no-cache'] : []), ...buildArgs, '-q', '-f', dockerfile, '-t', 'paas-bench-express', ctx];
      await docker(d, args, { DOCKER_BUILDKIT: '1' });
      return (performance.now() - t) / 1000;
    };
    const cold = await once(true);
    const unchanged: number[] = [];
    const codeOnly: number[] = [];
    for (let i = 0; i < runs; i++) {
      unchanged.push(await once(false));
      touchCode();
      codeOnly.push(await once(false));
    }
    return { cold, unchanged: median(unchanged), codeOnly: median(codeOnly), label: 'docker build (this run)' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const { dir: ctx, touchCode } = fixtureContext(fixture, 'paas-bench-ctx-');

async function main(): Promise<void> {
  const store = await openStore(dataDir);
  const base = await ensureBaseImage(store, BASE, 'node-24');
  if (base === null) {
    console.log(`bench/build: skipped: ${BASE} is not in the store at ${dataDir} and there is no cached layout at ${LAYOUT}; run provision/base-images --only node`);
    return;
  }
  // Docker's cold build starts with the base image unpacked; so does ours.
  await store.layerDirs(base);
  const runtime = createRuntime(args.runtime as string, { dataDir });
  const paas = async (noCache: boolean): Promise<{ s: number; r: BuildResult }> => {
    const t = performance.now();
    const r = await build({
      contextDir: ctx, tag: { repo: 'bench/express', tag: 'latest' }, noCache, runtime, store, dataDir,
      onLine: (l) => (process.env.BENCH_VERBOSE ? console.log(`  | ${l}`) : undefined),
    });
    return { s: (performance.now() - t) / 1000, r };
  };

  const cold = await paas(true);
  const unchanged: number[] = [];
  const codeOnly: number[] = [];
  for (let i = 0; i < runs; i++) {
    const u = await paas(false);
    if (!u.r.steps.filter((s) => /^(RUN|COPY|WORKDIR)/.test(s.instruction)).every((s) => s.cached)) throw new Error('unchanged rebuild missed the cache');
    unchanged.push(u.s);
    touchCode();
    const c = await paas(false);
    const install = c.r.steps.find((s) => s.instruction.startsWith('RUN npm ci'));
    if (install?.cached !== true) throw new Error('code-only rebuild did not reuse the npm ci layer');
    codeOnly.push(c.s);
  }
  const ours = { cold: cold.s, unchanged: median(unchanged), codeOnly: median(codeOnly) };
  const npmCi = hostNpmCi();

  const peer = await withDockerd(async (d): Promise<Figures> => {
    if (d !== null) return dockerFigures(d, store, touchCode);
    // MEASURED.md has no code-only figure; ratios against it are left out rather than guessed.
    return { cold: 3.36, unchanged: 0.44, codeOnly: null, label: 'docker build (MEASURED.md, not this run)' };
  });
  const ratio = (a: number, b: number | null): string => (b === null ? 'n/a' : `${(a / b).toFixed(2)}x`);
  console.log(`paas build on ${args.runtime}, ${BASE} ${base.digest.slice(7, 19)}, median of ${runs} for warm runs`);
  console.log(table([
    ['case', 'paas (s)', peer.label, 'ratio', 'goal'],
    ['cold (no cache, npm ci)', ours.cold.toFixed(2), peer.cold.toFixed(2), ratio(ours.cold, peer.cold), '≤ 1.0x'],
    ['warm, unchanged', ours.unchanged.toFixed(2), peer.unchanged.toFixed(2), ratio(ours.unchanged, peer.unchanged), ''],
    ['code-only change', ours.codeOnly.toFixed(2), peer.codeOnly === null ? 'n/a' : peer.codeOnly.toFixed(2), ratio(ours.codeOnly, peer.codeOnly), '≤ 0.5x'],
  ]));
  if (npmCi !== null) console.log(`for scale: npm ci of the same app on the host, empty cache, this run: ${npmCi.toFixed(2)} s`);
  console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  if (peer.codeOnly === null) {
    console.log(`code-only vs docker's unchanged figure (a lower bound for its code-only build): ${ratio(ours.codeOnly, peer.unchanged)}`);
  }
}

try {
  await main();
} finally {
  rmSync(ctx, { recursive: true, force: true });
  if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
}

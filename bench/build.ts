// Image build of a small Express app (test/fixtures/build/express: `npm ci` of express on
// node:24), with paas and `docker build --network host` on a private dockerd, in the same run:
// cold (no cache), warm-unchanged, and a code-only change. Docker gets the same node:24 from
// our store (`docker load`); when no dockerd can start, its figures are MEASURED.md's, labelled.
// Goals: cold ≤ 1.0x docker, code-only ≤ 0.5x docker.
//   node bench/build.ts [--data-dir DIR] [--runtime native|runc] [--runs N]
// The node:24 base image comes from the data dir's store, else from provision/base-images'
// cached OCI layout (/var/cache/paas/base/node-24); without either the bench says so and exits.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build, type BuildResult } from '../src/builder/index.ts';
import { openStore } from '../src/registry/index.ts';
import { createRuntime } from '../src/runtime/index.ts';
import {
  baseLayout,
  buildBenchArgs,
  dockerBuildFigures,
  ensureBaseImage,
  fixtureContext,
  hostNpmCi,
  median,
  table,
  withDockerd,
} from './lib.ts';

const repo = path.join(import.meta.dirname, '..');
const fixture = path.join(repo, 'test/fixtures/build/express');
const args = buildBenchArgs('paas-bench-build-');
const { runs, ownDataDir, dataDir } = args;
const BASE = 'library/node:24';
const LAYOUT = baseLayout('node-24');

type Figures = { cold: number; unchanged: number; codeOnly: number | null; label: string };

const { dir: ctx, touchCode } = fixtureContext(fixture, 'paas-bench-ctx-');

async function main(): Promise<void> {
  const store = await openStore(dataDir);
  const base = await ensureBaseImage(store, BASE, 'node-24');
  if (base === null) {
    console.log(
      `bench/build: skipped: ${BASE} is not in the store at ${dataDir} and there is no cached layout at ${LAYOUT}; run provision/base-images --only node`,
    );
    return;
  }
  // Docker's cold build starts with the base image unpacked; so does ours.
  await store.layerDirs(base);
  const runtime = createRuntime(args.runtime as string, { dataDir });
  const paas = async (noCache: boolean): Promise<{ s: number; r: BuildResult }> => {
    const t = performance.now();
    const r = await build({
      contextDir: ctx,
      tag: { repo: 'bench/express', tag: 'latest' },
      noCache,
      runtime,
      store,
      dataDir,
      onLine: (l) => (process.env.BENCH_VERBOSE ? console.log(`  | ${l}`) : undefined),
    });
    return { s: (performance.now() - t) / 1000, r };
  };

  // The first download of these packages through this box's proxy is slower than later ones:
  // pay it before anything is timed, so neither builder gets the cold one.
  hostNpmCi(fixture);
  const cold = await paas(true);
  const unchanged: number[] = [];
  const codeOnly: number[] = [];
  for (let i = 0; i < runs; i++) {
    const u = await paas(false);
    if (!u.r.steps.filter((s) => /^(RUN|COPY|WORKDIR)/.test(s.instruction)).every((s) => s.cached))
      throw new Error('unchanged rebuild missed the cache');
    unchanged.push(u.s);
    touchCode();
    const c = await paas(false);
    const install = c.r.steps.find((s) => s.instruction.startsWith('RUN npm ci'));
    if (install?.cached !== true)
      throw new Error('code-only rebuild did not reuse the npm ci layer');
    codeOnly.push(c.s);
  }
  const ours = { cold: cold.s, unchanged: median(unchanged), codeOnly: median(codeOnly) };
  const npmCi = hostNpmCi(fixture);

  const peer = await withDockerd(async (d): Promise<Figures> => {
    if (d !== null) {
      const dockerfile = readFileSync(path.join(fixture, 'Dockerfile'), 'utf8');
      return {
        ...(await dockerBuildFigures(d, store, {
          base: BASE,
          dockerfile,
          context: ctx,
          runs,
          touchCode,
        })),
        label: 'docker build (this run)',
      };
    }
    // MEASURED.md has no code-only figure; ratios against it are left out rather than guessed.
    return {
      cold: 3.36,
      unchanged: 0.44,
      codeOnly: null,
      label: 'docker build (MEASURED.md, not this run)',
    };
  });
  const ratio = (a: number, b: number | null): string =>
    b === null ? 'n/a' : `${(a / b).toFixed(2)}x`;
  console.log(
    `paas build on ${args.runtime}, ${BASE} ${base.digest.slice(7, 19)}, median of ${runs} for warm runs`,
  );
  console.log(
    table([
      ['case', 'paas (s)', peer.label, 'ratio', 'goal'],
      [
        'cold (no cache, npm ci)',
        ours.cold.toFixed(2),
        peer.cold.toFixed(2),
        ratio(ours.cold, peer.cold),
        '≤ 1.0x',
      ],
      [
        'warm, unchanged',
        ours.unchanged.toFixed(2),
        peer.unchanged.toFixed(2),
        ratio(ours.unchanged, peer.unchanged),
        '',
      ],
      [
        'code-only change',
        ours.codeOnly.toFixed(2),
        peer.codeOnly === null ? 'n/a' : peer.codeOnly.toFixed(2),
        ratio(ours.codeOnly, peer.codeOnly),
        '≤ 0.5x',
      ],
    ]),
  );
  if (npmCi !== null)
    console.log(
      `for scale: npm ci of the same app on the host, empty cache, this run: ${npmCi.toFixed(2)} s`,
    );
  console.log(
    `load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  if (peer.codeOnly === null) {
    console.log(
      `code-only vs docker's unchanged figure (a lower bound for its code-only build): ${ratio(ours.codeOnly, peer.unchanged)}`,
    );
  }
}

try {
  await main();
} finally {
  rmSync(ctx, { recursive: true, force: true });
  if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
}

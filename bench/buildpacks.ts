// Buildpack build of the Express fixture (test/fixtures/buildpacks/express: detect → render →
// build), cold (no cache) and after a code-only change, beside `docker build` of the Dockerfile
// Heroku's Node getting-started guide suggests for the same app, on a private dockerd in the
// same run (else MEASURED.md's docker figures, labelled as such). Our builder
// on that same hand-written Dockerfile is shown too, so the buildpack's own cost is visible.
//   node bench/buildpacks.ts [--data-dir DIR] [--runtime native|runc] [--runs N]
import { rmSync } from 'node:fs';
import path from 'node:path';
import { build, type BuildResult } from '../src/builder/index.ts';
import { BaseImages } from '../src/baseimages/index.ts';
import { describeChoice, detect, writeBuildpackFiles } from '../src/buildpacks/index.ts';
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
const fixture = path.join(repo, 'test/fixtures/buildpacks/express');
// Heroku's getting-started Dockerfile for Node (node-js-getting-started, "Deploying with Docker").
const HEROKU_DOCKERFILE = `FROM node:24
WORKDIR /app
COPY package*.json ./
RUN npm ci --omit=dev
COPY . .
ENV NODE_ENV=production
EXPOSE 5000
CMD ["npm", "start"]
`;
const args = buildBenchArgs('paas-bench-bp-');
const { runs, ownDataDir, dataDir } = args;

const { dir: ctx, touchCode } = fixtureContext(fixture, 'paas-bench-bp-ctx-');

async function main(): Promise<void> {
  const store = await openStore(dataDir);
  if ((await ensureBaseImage(store, 'library/node:24', 'node-24')) === null) {
    console.log(
      `bench/buildpacks: skipped: library/node:24 is not in ${dataDir} and ${baseLayout('node-24')} does not exist; run provision/base-images --only node`,
    );
    return;
  }
  await store.layerDirs(await store.resolveImage('library/node:24'));
  // The buildpack's Dockerfile names its own base (node:<pinned>-slim, not node:24): prepared
  // here as the daemon would (from /var/cache/paas/base when built before), outside the timing.
  const baseImages = new BaseImages({ store });
  const stages = new Set<string>();
  for (const [, ref, stage] of detect(ctx).dockerfile!.matchAll(
    /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim,
  )) {
    const earlierStage = stages.has(ref!.toLowerCase());
    if (stage !== undefined) stages.add(stage.toLowerCase());
    if (earlierStage) continue;
    if (
      !(await store.resolveImage(ref!).then(
        () => true,
        () => false,
      ))
    )
      await baseImages.prepare(ref!, (l) => console.log(l));
    await store.layerDirs(await store.resolveImage(ref!));
  }
  const runtime = createRuntime(args.runtime as string, { dataDir });
  let described = false;
  const paas = async (
    dockerfile: 'buildpack' | 'heroku',
    noCache: boolean,
  ): Promise<{ s: number; r: BuildResult }> => {
    const t = performance.now();
    let text = HEROKU_DOCKERFILE;
    if (dockerfile === 'buildpack') {
      const choice = detect(ctx);
      if (!described) console.log(describeChoice(choice));
      described = true;
      writeBuildpackFiles(ctx, choice);
      text = choice.dockerfile!;
    }
    const r = await build({
      contextDir: ctx,
      dockerfile: text,
      tag: { repo: `bench/${dockerfile}`, tag: 'latest' },
      noCache,
      runtime,
      store,
      dataDir,
      onLine: (l) => (process.env.BENCH_VERBOSE ? console.log(`  | ${l}`) : undefined),
    });
    return { s: (performance.now() - t) / 1000, r };
  };
  const measure = async (
    kind: 'buildpack' | 'heroku',
  ): Promise<{ cold: number; codeOnly: number }> => {
    const cold = await paas(kind, true);
    const codeOnly: number[] = [];
    for (let i = 0; i < runs; i++) {
      touchCode();
      const c = await paas(kind, false);
      if (c.r.steps.find((s) => s.instruction.startsWith('RUN npm ci'))?.cached !== true)
        throw new Error(`${kind}: code-only rebuild did not reuse the npm ci layer`);
      codeOnly.push(c.s);
    }
    return { cold: cold.s, codeOnly: median(codeOnly) };
  };
  hostNpmCi(fixture); // the proxy's first fetch of these packages is slower: paid before timing
  const bp = await measure('buildpack');
  const hand = await measure('heroku');

  const peer = await withDockerd(
    async (
      d,
    ): Promise<{
      cold: number;
      codeOnly: number | null;
      unchanged: number | null;
      label: string;
    }> => {
      if (d !== null)
        return {
          ...(await dockerBuildFigures(d, store, {
            base: 'library/node:24',
            dockerfile: HEROKU_DOCKERFILE,
            context: ctx,
            runs,
            touchCode,
          })),
          label: 'docker build, Heroku Dockerfile (this run)',
        };
      return {
        cold: 3.36,
        codeOnly: null,
        unchanged: 0.44,
        label: 'docker build (MEASURED.md, not this run)',
      };
    },
  );
  const ratio = (a: number, b: number | null): string =>
    b === null ? 'n/a' : `${(a / b).toFixed(2)}x`;
  console.log(`paas on ${args.runtime}, Express fixture, median of ${runs} code-only runs`);
  console.log(
    table([
      [
        'case',
        'paas buildpack (s)',
        'paas, Heroku Dockerfile (s)',
        peer.label,
        'buildpack / docker',
      ],
      [
        'cold (no cache)',
        bp.cold.toFixed(2),
        hand.cold.toFixed(2),
        peer.cold.toFixed(2),
        ratio(bp.cold, peer.cold),
      ],
      [
        'code-only change',
        bp.codeOnly.toFixed(2),
        hand.codeOnly.toFixed(2),
        peer.codeOnly === null ? 'n/a' : peer.codeOnly.toFixed(2),
        ratio(bp.codeOnly, peer.codeOnly),
      ],
    ]),
  );
  if (peer.codeOnly === null && peer.unchanged !== null) {
    console.log(
      `code-only vs docker's unchanged rebuild (a lower bound for its code-only build): ${ratio(bp.codeOnly, peer.unchanged)}`,
    );
  }
}

try {
  await main();
} finally {
  rmSync(ctx, { recursive: true, force: true });
  if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
}

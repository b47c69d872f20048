// The Dockerfile executor: stages in order, each instruction a step with a cache key chained
// from its parent, run by its verb (from.ts, copy.ts, run.ts, meta.ts) over one build
// session (session.ts). The final stage is committed to the store as `repo:tag`.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgument } from '../errors/index.ts';
import { BuildCache } from './cache.ts';
import { openContext, type Context } from './context.ts';
import { copyInstr } from './copy.ts';
import { defaultBuildLimits, DiskBudget, type BuildLimits } from './limits.ts';
import { fromRef, fromStage, neededStages, parentStage } from './from.ts';
import { metaInstr, workdirInstr } from './meta.ts';
import { parseDockerfile, type Instr } from './parse.ts';
import { runInstr } from './run.ts';
import {
  BuildSession,
  type BuildOptions,
  type BuildResult,
  type BuildStep,
  type StageState,
} from './session.ts';
import { openWorkspace } from './workspace.ts';
import { expandWord } from './words.ts';

export { type BuildOptions, type BuildResult, type BuildStep } from './session.ts';

async function readDockerfile(opts: BuildOptions, ctx: Context): Promise<string> {
  const d = opts.dockerfile;
  if (d !== undefined && d.includes('\n')) return d;
  const file = path.resolve(ctx.root, d ?? 'Dockerfile');
  try {
    return await fsp.readFile(file, 'utf8');
  } catch {
    throw new InvalidArgument(`Dockerfile not found: ${file}`, { dockerfile: file });
  }
}

/** One instruction by its verb; returns whether it was cached. */
function step(session: BuildSession, st: StageState, i: Instr, stepN: number): Promise<boolean> {
  switch (i.keyword) {
    case 'RUN':
      return runInstr(session, st, i, stepN);
    case 'COPY':
    case 'ADD':
      return copyInstr(session, st, i);
    case 'WORKDIR':
      return workdirInstr(session, st, i);
    default:
      return Promise.resolve(metaInstr(session, st, i));
  }
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const out = opts.onLine ?? (() => undefined);
  const ctx = await openContext(opts.contextDir, opts.maxContextBytes);
  const limits: BuildLimits = { ...defaultBuildLimits(), ...opts.limits };
  const disk = new DiskBudget(limits.diskBytes);
  disk.charge(ctx.bytes, 'the build context');
  const parsed = parseDockerfile(await readDockerfile(opts, ctx));
  const { escape } = parsed;
  const buildArgs = new Map(Object.entries(opts.buildArgs ?? {}));
  const consumed = new Set<string>();
  const cache = new BuildCache(opts.dataDir);
  const { runtime } = opts;

  // ARGs before the first FROM: usable in FROM lines, and as defaults of `ARG NAME` in stages.
  const globals = new Map<string, string>();
  for (const a of parsed.globalArgs) {
    for (const p of a.props) {
      consumed.add(p.name);
      const v =
        buildArgs.get(p.name) ??
        (p.value === null ? undefined : expandWord(p.value, globals, escape, a.line));
      if (v !== undefined) globals.set(p.name, v);
    }
  }
  const target =
    opts.target === undefined
      ? parsed.stages.at(-1)
      : parsed.stages.find((s) => s.name === opts.target?.toLowerCase());
  if (target === undefined) {
    throw new InvalidArgument(
      `build target "${opts.target}" is not a stage of the Dockerfile (stages: ${parsed.stages.map((s) => s.name ?? String(s.index)).join(', ')})`,
    );
  }
  const stages = neededStages(parsed.stages, target, (s) => fromRef(s, globals, escape), globals);
  const total = stages.reduce((n, s) => n + 1 + s.instrs.length, 0);
  const steps: BuildStep[] = [];
  let n = 0;
  // Opened last before the try: nothing between here and its clean-up can throw.
  const ws = await openWorkspace(opts.dataDir);
  const session = new BuildSession({
    opts,
    ctx,
    escape,
    buildArgs,
    consumed,
    globals,
    cache,
    runtime,
    total,
    limits,
    disk,
    ws,
  });
  try {
    let last: StageState | null = null;
    for (const s of stages) {
      const t0 = performance.now();
      out(`Step ${++n}/${total} : ${s.from.text}`);
      const st = await fromStage(session, s);
      const parent = parentStage(session, s);
      out(
        ` ---> ${parent ? `stage ${parent.stage.name}` : st.base ? st.base.digest.slice(7, 19) : 'scratch'}`,
      );
      steps.push({ n, instruction: s.from.text, cached: true, ms: performance.now() - t0 });
      for (const i of s.instrs) {
        const stepN = ++n;
        const t = performance.now();
        out(`Step ${stepN}/${total} : ${i.text}`);
        let cached: boolean;
        try {
          cached = await step(session, st, i, stepN);
        } finally {
          await session.closeViews();
        }
        const ms = performance.now() - t;
        out(` ---> ${(ms / 1000).toFixed(2)}s`);
        steps.push({ n: stepN, instruction: i.text, cached, ms });
      }
      session.built.set(s.index, st);
      last = st;
    }
    const unused = [...buildArgs.keys()].filter((k) => !consumed.has(k));
    if (unused.length > 0)
      out(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    const final = last as StageState;
    const image = await opts.store.commitImage({
      repo: opts.tag.repo,
      tag: opts.tag.tag,
      base: final.base,
      newLayers: final.newLayers,
      config: final.config,
      history: final.history,
      created: final.created,
    });
    out(`Successfully built ${image.digest}`);
    out(`Successfully tagged ${opts.tag.repo}:${opts.tag.tag}`);
    return { image, steps };
  } finally {
    await session.close();
  }
}

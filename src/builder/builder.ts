// The Dockerfile executor: stages in order, each instruction a step with a cache key chained
// from its parent. Layer steps (RUN, COPY, ADD, WORKDIR of a missing directory) look up the
// cache first and otherwise build their layer; metadata steps only change the config. The
// final stage is committed to the store as `repo:tag`.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import {
  BuildFailed,
  BuildLimitExceeded,
  InvalidArgument,
  InvalidDockerfile,
  PaasError,
} from '../errors/index.ts';
import type { ContainerConfig, Image, ImageLayer, ImageStore } from '../registry/index.ts';
import { createRuntime, type Runtime, type RuntimeName } from '../runtime/index.ts';
import { BuildCache, rootKey, stepKey, type CacheEntry } from './cache.ts';
import { applyMeta, commandOf, envMap, substitutionVars } from './config.ts';
import { openContext, rootTree, type Context, type SourceTree } from './context.ts';
import { parseChmod, writeCopyLayer, writeDirLayer } from './copy.ts';
import { defaultBuildLimits, DiskBudget, treeBytes, type BuildLimits } from './limits.ts';
import { parseDockerfile, type Instr, type Stage } from './parse.ts';
import { runStep } from './run.ts';
import { collectSources, hashSources } from './sources.ts';
import { LayerStack } from './stack.ts';
import { openView, type View } from './view.ts';
import { openWorkspace } from './workspace.ts';
import { expandWord, expandWords } from './words.ts';

export type BuildOptions = {
  contextDir: string;
  /** A path (absolute, or relative to the context) or the Dockerfile's contents; default `<context>/Dockerfile`. */
  dockerfile?: string;
  tag: { repo: string; tag: string };
  buildArgs?: Record<string, string>;
  /** Stage name to build (default: the last stage). */
  target?: string;
  noCache?: boolean;
  /** The runtime RUN steps use: an instance, or a backend name (default `native`). */
  runtime?: Runtime | RuntimeName;
  store: ImageStore;
  dataDir: string;
  onLine?: (line: string) => void;
  /** Limits of RUN steps and the build's disk budget (defaults: defaultBuildLimits()). */
  limits?: Partial<BuildLimits>;
  /** Largest build context accepted (default 512 MiB). */
  maxContextBytes?: number;
  /**
   * Makes a base image the store lacks (src/baseimages builds node:18-slim… on demand); says
   * so through the build's output. Resolves false when `ref` is not one it makes.
   */
  prepareBase?: (ref: string, say: (line: string) => void) => Promise<boolean>;
};

export type BuildStep = { n: number; instruction: string; cached: boolean; ms: number };
export type BuildResult = { image: Image; steps: BuildStep[] };
type HistoryEntry = NonNullable<Image['configFile']['history']>[number];

type StageState = {
  stage: Stage;
  base: Image | null;
  /** Every layer, bottom first (base image's and this build's). */
  layers: ImageLayer[];
  newLayers: ImageLayer[];
  history: HistoryEntry[];
  config: ContainerConfig;
  cmdSet: boolean;
  key: string;
  args: Map<string, string>;
  created: string;
  /** True once a step in this stage's chain was rebuilt: later metadata steps are not "cached". */
  rebuilt: boolean;
};

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

/** Stages the target needs (FROM <stage>, COPY --from), in file order. */
function neededStages(
  stages: Stage[],
  target: Stage,
  fromOf: (s: Stage) => string,
  globals: Map<string, string>,
): Stage[] {
  const need = new Set<number>();
  const byRef = (ref: string, before: number): Stage | undefined => {
    const r = ref.toLowerCase();
    if (/^\d+$/.test(r)) return Number(r) < before ? stages[Number(r)] : undefined;
    return stages.find((s) => s.name === r && s.index < before);
  };
  const visit = (s: Stage): void => {
    if (need.has(s.index)) return;
    need.add(s.index);
    const parent = byRef(fromOf(s), s.index);
    if (parent) visit(parent);
    for (const i of s.instrs) {
      const f = i.flags.get('from');
      if (i.keyword === 'COPY' && f !== undefined) {
        const dep = byRef(expandWord(f, globals), s.index);
        if (dep) visit(dep);
      }
    }
  };
  visit(target);
  return stages.filter((s) => need.has(s.index));
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
  const store = opts.store;
  /** An image for FROM or COPY --from: the store's, else a base image prepareBase builds now, else pulled. */
  const resolveBase = async (ref: string): Promise<Image> => {
    try {
      return await store.resolveImage(ref);
    } catch (e) {
      if (!(e instanceof PaasError) || e.code !== 'ImageNotFound') throw e;
      if (opts.prepareBase && (await opts.prepareBase(ref, out))) return store.resolveImage(ref);
      // Not here and not a base image we build: pulled from its registry (once).
      return store.ensureImage(ref, { onProgress: out });
    }
  };
  const runtime =
    typeof opts.runtime === 'object'
      ? opts.runtime
      : createRuntime(opts.runtime ?? 'native', { dataDir: opts.dataDir });
  const views: View[] = [];
  const steps: BuildStep[] = [];

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
  const fromOf = (s: Stage): string => {
    const words = expandWords(s.from.args, globals, escape, s.from.line);
    return words[0] ?? '';
  };
  const target =
    opts.target === undefined
      ? parsed.stages.at(-1)
      : parsed.stages.find((s) => s.name === opts.target?.toLowerCase());
  if (target === undefined) {
    throw new InvalidArgument(
      `build target "${opts.target}" is not a stage of the Dockerfile (stages: ${parsed.stages.map((s) => s.name ?? String(s.index)).join(', ')})`,
    );
  }
  const stages = neededStages(parsed.stages, target, fromOf, globals);
  const total = stages.reduce((n, s) => n + 1 + s.instrs.length, 0);
  const built = new Map<number, StageState>();
  let n = 0;
  // Opened last before the try: nothing between here and its clean-up can throw.
  const ws = await openWorkspace(opts.dataDir);
  const { empty } = ws;
  const tmp = ws.dir;

  const layerDirs = (layers: ImageLayer[]): Promise<string[]> =>
    // The store resolves unpacked dirs per image; an in-progress stage is "an image" of its layers.
    store.layerDirs({ layers } as Image);

  const view = async (layers: ImageLayer[]): Promise<View> => {
    const v = await openView(await layerDirs(layers), path.join(await tmp('view'), 'root'), empty);
    views.push(v);
    return v;
  };

  const apply = (st: StageState, e: CacheEntry, createdBy: string): void => {
    st.key = e.key;
    st.created = e.created;
    if (e.layer !== null) {
      st.layers.push(e.layer);
      st.newLayers.push(e.layer);
      st.history.push({ created: e.created, created_by: createdBy });
    } else {
      st.history.push({ created: e.created, created_by: createdBy, empty_layer: true });
    }
  };

  /** A layer step: cache hit, or build the layer with `make` (which returns its dir or null). */
  const layerStep = async (
    st: StageState,
    key: string,
    createdBy: string,
    make: () => Promise<string | null>,
  ): Promise<boolean> => {
    if (opts.noCache !== true) {
      const hit = await cache.get(key, store);
      if (hit !== null) {
        out(' ---> Using cache');
        apply(st, hit, createdBy);
        return true;
      }
    }
    const dir = await make();
    let layer: ImageLayer | null = null;
    if (dir !== null && (await fsp.readdir(dir)).length > 0)
      layer = await store.diffToLayer(dir, { adopt: true });
    const entry: CacheEntry = {
      key,
      layer,
      created: new Date().toISOString(),
      createdBy,
      base: st.base?.digest ?? null,
    };
    await cache.put(entry);
    apply(st, entry, createdBy);
    st.rebuilt = true;
    return false;
  };

  /**
   * Where a COPY reads from. A stage or image source is keyed by that stage's key or image
   * digest (which fix its content), so its root is mounted only when the layer is built.
   */
  const sourceOf = async (
    st: StageState,
    from: string | undefined,
    line: number,
  ): Promise<{ inputs: string | null; open: () => Promise<SourceTree> }> => {
    if (from === undefined) return { inputs: null, open: async () => ctx };
    const ref = expandWord(
      from,
      substitutionVars(st.config, new Map([...globals, ...st.args])),
      escape,
      line,
    ).toLowerCase();
    const dep = /^\d+$/.test(ref)
      ? built.get(Number(ref))
      : [...built.values()].find((b) => b.stage.name === ref);
    if (/^\d+$/.test(ref) && (dep === undefined || dep.stage.index >= st.stage.index)) {
      throw new InvalidDockerfile(
        `Dockerfile line ${line}: --from=${ref}: no earlier stage with that index`,
        { line },
      );
    }
    if (dep !== undefined && dep.stage.index < st.stage.index) {
      return {
        inputs: `stage:${dep.key}`,
        open: async () =>
          rootTree((await view(dep.layers)).root, `stage "${dep.stage.name ?? dep.stage.index}"`),
      };
    }
    const image = await resolveBase(ref);
    return {
      inputs: `image:${image.digest}`,
      open: async () => rootTree((await view(image.layers)).root, `image ${image.ref}`),
    };
  };

  const copy = async (st: StageState, i: Instr): Promise<boolean> => {
    const vars = substitutionVars(st.config, st.args);
    const words =
      i.json !== null
        ? i.json.map((w) => expandWord(w, vars, escape, i.line))
        : expandWords(i.args, vars, escape, i.line);
    if (words.length < 2)
      throw new InvalidDockerfile(
        `Dockerfile line ${i.line}: ${i.keyword} needs at least one source and a destination`,
        { line: i.line },
      );
    const srcs = words.slice(0, -1);
    const rawDest = words.at(-1) as string;
    const workdir = st.config.WorkingDir || '/';
    const dest = rawDest.startsWith('/')
      ? rawDest
      : path.posix.join(workdir, rawDest) + (rawDest.endsWith('/') || rawDest === '.' ? '/' : '');
    const chown = i.flags.has('chown')
      ? expandWord(i.flags.get('chown') as string, vars, escape, i.line)
      : null;
    const chmodRaw = i.flags.has('chmod')
      ? expandWord(i.flags.get('chmod') as string, vars, escape, i.line)
      : null;
    const chmod = chmodRaw === null ? null : parseChmod(chmodRaw, i.line);
    const source = await sourceOf(st, i.flags.get('from'), i.line);
    // Context sources are resolved and hashed up front: their content is the key.
    const early = source.inputs === null ? await collectSources(ctx, srcs, i.line) : null;
    const hash = source.inputs ?? `context:${await hashSources(ctx, early ?? [])}`;
    const text = `${i.keyword}${chown ? ` --chown=${chown}` : ''}${chmodRaw ? ` --chmod=${chmodRaw}` : ''} ${JSON.stringify(srcs)} ${dest}`;
    const key = stepKey({ parent: st.key, instruction: text, args: st.args, inputs: hash });
    return layerStep(st, key, `${text} # ${hash.slice(0, 24)}`, async () => {
      const tree = await source.open();
      const sources = early ?? (await collectSources(tree, srcs, i.line));
      const layer = await tmp('copy');
      await writeCopyLayer(
        {
          tree,
          sources,
          dest,
          chown,
          chmod,
          add: i.keyword === 'ADD',
          line: i.line,
          disk,
        },
        layer,
        await layerDirs(st.layers),
      );
      disk.charge(await treeBytes(layer), `${i.keyword} at line ${i.line}`);
      return layer;
    });
  };

  const runInstr = async (st: StageState, i: Instr, stepN: number): Promise<boolean> => {
    const command = commandOf(i, st.config);
    const env = Object.fromEntries([...st.args, ...envMap(st.config)]);
    const key = stepKey({
      parent: st.key,
      instruction: `RUN ${JSON.stringify(command)}`,
      args: st.args,
    });
    return layerStep(st, key, `RUN ${JSON.stringify(command)}`, async () => {
      const dir = await tmp('run');
      const upper = path.join(dir, 'upper');
      const lowers = await layerDirs(st.layers);
      const res = await runStep({
        runtime,
        lowers,
        image: new LayerStack(lowers),
        upper,
        work: path.join(dir, 'work'),
        empty,
        command,
        env,
        cwd: st.config.WorkingDir || '/',
        user: st.config.User || '0',
        limits,
        disk,
        step: stepN,
        onLine: out,
      }).catch((err: unknown) => {
        if (err instanceof BuildLimitExceeded) throw err;
        // The container could not start (bad USER, missing shell…): still this step's failure.
        const why = err instanceof Error ? err.message : String(err);
        throw new BuildFailed(
          `step ${stepN}/${total} (${i.text}) failed: ${why}`,
          { step: stepN, instruction: i.text, exitCode: null, line: i.line },
          { cause: err },
        );
      });
      if (res.exitCode !== 0 || res.signal !== null) {
        const how =
          res.signal !== null
            ? `was killed by ${res.signal}`
            : `returned a non-zero code: ${res.exitCode}`;
        throw new BuildFailed(
          `step ${stepN}/${total} (${i.text}) failed: the command ${JSON.stringify(command)} ${how}`,
          {
            step: stepN,
            instruction: i.text,
            exitCode: res.exitCode,
            signal: res.signal,
            line: i.line,
          },
        );
      }
      return upper;
    });
  };

  const workdir = async (st: StageState, i: Instr): Promise<boolean> => {
    const vars = substitutionVars(st.config, st.args);
    const dir = expandWord(i.args, vars, escape, i.line).trim();
    if (dir === '')
      throw new InvalidDockerfile(`Dockerfile line ${i.line}: WORKDIR needs a path`, {
        line: i.line,
      });
    const abs = path.posix.resolve(st.config.WorkingDir || '/', dir);
    st.config.WorkingDir = abs;
    const key = stepKey({ parent: st.key, instruction: `WORKDIR ${abs}`, args: st.args });
    // The directory is created (root-owned, 0755) when the image lacks it, as Docker does.
    return layerStep(st, key, `WORKDIR ${abs}`, async () => {
      const layer = await tmp('workdir');
      return (await writeDirLayer(abs, layer, await layerDirs(st.layers), i.line)) ? layer : null;
    });
  };

  const arg = (st: StageState, i: Instr): string => {
    const parts: string[] = [];
    for (const p of i.props) {
      consumed.add(p.name);
      const vars = substitutionVars(st.config, st.args);
      const v =
        buildArgs.get(p.name) ??
        (p.value === null ? globals.get(p.name) : expandWord(p.value, vars, escape, i.line));
      if (v !== undefined) st.args.set(p.name, v);
      parts.push(v === undefined ? p.name : `${p.name}=${v}`);
    }
    return `ARG ${parts.join(' ')}`;
  };

  const from = async (s: Stage): Promise<StageState> => {
    const ref = fromOf(s);
    if (ref === '')
      throw new InvalidDockerfile(`Dockerfile line ${s.from.line}: FROM needs an image`, {
        line: s.from.line,
      });
    const parent = [...built.values()].find(
      (b) => b.stage.name === ref.toLowerCase() && b.stage.index < s.index,
    );
    if (parent !== undefined) {
      return {
        ...structuredClone({ ...parent, stage: null }),
        stage: s,
        args: new Map(),
        cmdSet: false,
        rebuilt: parent.rebuilt,
        key: rootKey(`stage ${parent.key}`),
      } as StageState;
    }
    if (ref === 'scratch') {
      return {
        stage: s,
        base: null,
        layers: [],
        newLayers: [],
        history: [],
        config: {},
        cmdSet: false,
        key: rootKey('scratch'),
        args: new Map(),
        created: new Date(0).toISOString(),
        rebuilt: false,
      };
    }
    const base = await resolveBase(ref);
    return {
      stage: s,
      base,
      layers: [...base.layers],
      newLayers: [],
      history: [],
      config: structuredClone(base.config),
      cmdSet: false,
      key: rootKey(base.digest),
      args: new Map(),
      created: base.configFile.created ?? new Date(0).toISOString(),
      rebuilt: false,
    };
  };

  try {
    let last: StageState | null = null;
    for (const s of stages) {
      const t0 = performance.now();
      out(`Step ${++n}/${total} : ${s.from.text}`);
      const st = await from(s);
      const parentStage = [...built.values()].find(
        (b) => b.stage.name === fromOf(s).toLowerCase() && b.stage.index < s.index,
      );
      out(
        ` ---> ${parentStage ? `stage ${parentStage.stage.name}` : st.base ? st.base.digest.slice(7, 19) : 'scratch'}`,
      );
      steps.push({ n, instruction: s.from.text, cached: true, ms: performance.now() - t0 });
      for (const i of s.instrs) {
        const stepN = ++n;
        const t = performance.now();
        out(`Step ${stepN}/${total} : ${i.text}`);
        let cached: boolean;
        try {
          switch (i.keyword) {
            case 'RUN':
              cached = await runInstr(st, i, stepN);
              break;
            case 'COPY':
            case 'ADD':
              cached = await copy(st, i);
              break;
            case 'WORKDIR':
              cached = await workdir(st, i);
              break;
            default: {
              const text =
                i.keyword === 'ARG'
                  ? arg(st, i)
                  : applyMeta(st, i, substitutionVars(st.config, st.args), escape);
              st.key = stepKey({ parent: st.key, instruction: text, args: st.args });
              st.history.push({ created: st.created, created_by: text, empty_layer: true });
              cached = opts.noCache !== true && !st.rebuilt;
            }
          }
        } finally {
          for (const v of views.splice(0)) await v.close();
        }
        const ms = performance.now() - t;
        out(` ---> ${(ms / 1000).toFixed(2)}s`);
        steps.push({ n: stepN, instruction: i.text, cached, ms });
      }
      built.set(s.index, st);
      last = st;
    }
    const unused = [...buildArgs.keys()].filter((k) => !consumed.has(k));
    if (unused.length > 0)
      out(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    const final = last as StageState;
    const image = await store.commitImage({
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
    for (const v of views.splice(0)) await v.close().catch(() => undefined);
    await ws.remove().catch(() => undefined);
  }
}

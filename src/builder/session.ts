// A build session: what every instruction of one build shares (options, context, cache,
// store, runtime, the stages built so far, scratch space and open views), and the two
// shapes a step takes. Layer steps (RUN, COPY, ADD, WORKDIR of a missing directory) look
// up the cache first and otherwise build their layer; metadata steps only change the
// config. The verbs live one family per file (from.ts, copy.ts, run.ts, meta.ts).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { PaasError } from '../errors/index.ts';
import type { ContainerConfig, Image, ImageLayer, ImageStore } from '../registry/index.ts';
import type { Runtime } from '../runtime/index.ts';
import type { BuildCache, CacheEntry } from './cache.ts';
import { substitutionVars } from './config.ts';
import type { Context } from './context.ts';
import type { BuildLimits, DiskBudget } from './limits.ts';
import type { Stage } from './parse.ts';
import { openView, type View } from './view.ts';
import type { Workspace } from './workspace.ts';
import type { Vars } from './words.ts';

export type BuildOptions = {
  contextDir: string;
  /** A path (absolute, or relative to the context) or the Dockerfile's contents; default `<context>/Dockerfile`. */
  dockerfile?: string;
  tag: { repo: string; tag: string };
  buildArgs?: Record<string, string>;
  /** Stage name to build (default: the last stage). */
  target?: string;
  noCache?: boolean;
  /** The runtime RUN steps run on. Required: a build never picks a backend by itself. */
  runtime: Runtime;
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
export type HistoryEntry = NonNullable<Image['configFile']['history']>[number];

/** One stage in the making. */
export type StageState = {
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

export class BuildSession {
  readonly opts: BuildOptions;
  readonly out: (line: string) => void;
  readonly ctx: Context;
  readonly escape: string;
  readonly buildArgs: ReadonlyMap<string, string>;
  /** Build args some ARG declared (the rest are warned about). */
  readonly consumed: Set<string>;
  /** ARGs before the first FROM. */
  readonly globals: ReadonlyMap<string, string>;
  readonly cache: BuildCache;
  readonly store: ImageStore;
  readonly runtime: Runtime;
  /** Steps in the whole build (for `Step n/total`). */
  readonly total: number;
  readonly limits: BuildLimits;
  /** The build's disk budget: context, layers and RUN upper dirs are charged to it. */
  readonly disk: DiskBudget;
  /** Stages built so far, by index. */
  readonly built = new Map<number, StageState>();
  /** Context file hashes of this build (`COPY package.json` then `COPY .` reads each once). */
  readonly fileHashes = new Map<string, string>();
  private readonly ws: Workspace;
  private readonly views: View[] = [];

  constructor(s: {
    opts: BuildOptions;
    ctx: Context;
    escape: string;
    buildArgs: ReadonlyMap<string, string>;
    consumed: Set<string>;
    globals: ReadonlyMap<string, string>;
    cache: BuildCache;
    runtime: Runtime;
    total: number;
    limits: BuildLimits;
    disk: DiskBudget;
    ws: Workspace;
  }) {
    this.opts = s.opts;
    this.out = s.opts.onLine ?? (() => undefined);
    this.ctx = s.ctx;
    this.escape = s.escape;
    this.buildArgs = s.buildArgs;
    this.consumed = s.consumed;
    this.globals = s.globals;
    this.cache = s.cache;
    this.store = s.opts.store;
    this.runtime = s.runtime;
    this.total = s.total;
    this.limits = s.limits;
    this.disk = s.disk;
    this.ws = s.ws;
  }

  /**
   * An image for FROM or COPY --from: the store's, else a base image prepareBase builds now,
   * else pulled.
   */
  async resolveBase(ref: string): Promise<Image> {
    try {
      return await this.store.resolveImage(ref);
    } catch (e) {
      if (!(e instanceof PaasError) || e.code !== 'ImageNotFound') throw e;
      if (this.opts.prepareBase && (await this.opts.prepareBase(ref, this.out)))
        return this.store.resolveImage(ref);
      // Not here and not a base image we build: pulled from its registry (once).
      return this.store.ensureImage(ref, { onProgress: this.out });
    }
  }

  /** An empty directory (the bottom layer of read-only views, the lower of layerless RUNs). */
  get empty(): string {
    return this.ws.empty;
  }

  /** A fresh scratch directory in the build's workspace. */
  tmp(label: string): Promise<string> {
    return this.ws.dir(label);
  }

  /** Variables for substitution in a stage: its ARGs, overridden by its ENV. */
  vars(st: StageState): Vars {
    return substitutionVars(st.config, st.args);
  }

  layerDirs(layers: ImageLayer[]): Promise<string[]> {
    // The store resolves unpacked dirs per image; an in-progress stage is "an image" of its layers.
    return this.store.layerDirs({ layers } as Image);
  }

  /** A read-only mount of `layers`, closed at the end of the step. */
  async view(layers: ImageLayer[]): Promise<View> {
    const v = await openView(
      await this.layerDirs(layers),
      path.join(await this.tmp('view'), 'root'),
      this.empty,
    );
    this.views.push(v);
    return v;
  }

  async closeViews(quiet = false): Promise<void> {
    for (const v of this.views.splice(0)) {
      if (quiet) await v.close().catch(() => undefined);
      else await v.close();
    }
  }

  /** Ends the session: views unmounted, scratch space removed. */
  async close(): Promise<void> {
    await this.closeViews(true);
    await this.ws.remove().catch(() => undefined);
  }

  private apply(st: StageState, e: CacheEntry, createdBy: string): void {
    st.key = e.key;
    st.created = e.created;
    if (e.layer !== null) {
      st.layers.push(e.layer);
      st.newLayers.push(e.layer);
      st.history.push({ created: e.created, created_by: createdBy });
    } else {
      st.history.push({ created: e.created, created_by: createdBy, empty_layer: true });
    }
  }

  /**
   * A layer step: a cache hit, or the layer built by `make` (which returns its dir, or null
   * for no layer). Returns whether it was cached.
   */
  async layerStep(
    st: StageState,
    key: string,
    createdBy: string,
    make: () => Promise<string | null>,
  ): Promise<boolean> {
    if (this.opts.noCache !== true) {
      const hit = await this.cache.get(key, this.store);
      if (hit !== null) {
        this.out(' ---> Using cache');
        this.apply(st, hit, createdBy);
        return true;
      }
    }
    const dir = await make();
    let layer: ImageLayer | null = null;
    if (dir !== null && (await fsp.readdir(dir)).length > 0)
      layer = await this.store.diffToLayer(dir, { adopt: true });
    const entry: CacheEntry = {
      key,
      layer,
      created: new Date().toISOString(),
      createdBy,
      base: st.base?.digest ?? null,
    };
    await this.cache.put(entry);
    this.apply(st, entry, createdBy);
    st.rebuilt = true;
    return false;
  }
}

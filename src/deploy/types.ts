// What the pipeline needs from the rest of paas, passed in by the daemon (STYLE.md §9: the
// daemon wires, the pipeline works). Each field is a real part; tests pass the real ones.
import type { AppName, Release, State } from '../apps/index.ts';
import type { BuildLimits } from '../builder/index.ts';
import type { BaseImageProvider } from '../baseimages/index.ts';
import type { LogCollector, LogStore } from '../logs/index.ts';
import type { Image, ImageStore } from '../registry/index.ts';
import type { ContainerInfo, Runtime } from '../runtime/index.ts';
import type { Backend, RouteTable } from '../router/index.ts';

/** The builder's entry point (src/builder): a Dockerfile context in, a stored image out. */
export type BuildFn = (opts: {
  contextDir: string;
  /** A buildpack's rendered Dockerfile (contents); default: the context's own Dockerfile. */
  dockerfile?: string;
  tag: { repo: string; tag: string };
  runtime: Runtime;
  store: ImageStore;
  dataDir: string;
  onLine: (line: string) => void;
  noCache?: boolean;
  limits?: Partial<BuildLimits>;
  maxContextBytes?: number;
  prepareBase?: (ref: string, say: (line: string) => void) => Promise<boolean>;
}) => Promise<{ image: Image }>;

/** The part of the router client the pipeline uses. */
export interface RouterPort {
  switch(app: string, backends: Backend[]): Promise<{ drained: boolean }>;
  setRoutes(table: RouteTable): Promise<{ drained: boolean }>;
}

/** Default grace between SIGTERM and SIGKILL for a retired process (Heroku's 30 s). */
export const DEFAULT_STOP_GRACE_MS = 30_000;

export interface DeployDeps {
  dataDir: string;
  domain: string;
  httpPort: number;
  state: State;
  logs: LogStore;
  collector: LogCollector;
  runtime: Runtime;
  store: ImageStore;
  router: RouterPort;
  build: BuildFn;
  /** RUN limits and disk budget of every build (the daemon's --build-* flags). */
  buildLimits?: Partial<BuildLimits>;
  /** Largest pushed tree, bytes (--max-push-size): checked before it is checked out. */
  maxPushBytes?: number;
  /** Base images made on demand and the Node releases engines.node picks from (optional: without it, only images already in the store and the pinned Node versions). */
  baseImages?: BaseImageProvider;
  /** Every app process and its restart policy (supervisor.ts); see withSupervisor. */
  supervisor: ProcessSupervisor;
  /** How long a new web process may take to accept on its port. */
  startTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL for retired processes (DEFAULT_STOP_GRACE_MS; app.json may say otherwise). */
  stopGraceMs?: number;
  /** Limits of every app process without its own (resources:set); default DEFAULT_APP_LIMITS. */
  defaultLimits?: AppLimits;
}

/**
 * What starting, checking and stopping containers needs: everything but the supervisor, which
 * is built on these (so it never holds a reference to itself through its dependencies).
 */
export type ProcessDeps = Omit<DeployDeps, 'supervisor'>;

/** The limits every app process gets unless resources:set says otherwise. */
export interface AppLimits {
  memoryBytes: number;
  pids: number;
}

/**
 * Heroku's standard dyno has 512 MiB; 4096 tasks is far above what a web process or worker
 * uses (threads count too) and far below what a fork bomb needs to starve the host.
 */
export const DEFAULT_APP_LIMITS: AppLimits = { memoryBytes: 512 * 1024 * 1024, pids: 4096 };

/** Where a step's output goes: the pusher's terminal and the app's log. */
export interface Output {
  write(text: string): void;
  readonly signal?: AbortSignal;
}

export type ProcState = 'starting' | 'running' | 'restarting' | 'crashed' | 'stopping';

/**
 * One process slot (app, type, n, release), backed by one container at a time, as the
 * supervisor shows it: read-only outside supervisor.ts, which alone changes a slot (and its
 * route) through its verbs.
 */
export type ProcView = Readonly<Omit<Proc, 'timer'>>;

/** The supervisor's own record of a slot; never handed out writable. */
export interface Proc {
  readonly app: AppName;
  readonly type: string;
  readonly n: number;
  readonly version: number;
  /** The slot's current container. */
  id: string;
  ip: string | null;
  port: number;
  state: ProcState;
  /** Passed its checks and still running. */
  healthy: boolean;
  /** web: receives traffic whenever healthy (false while a deploy checks it, or being retired). */
  inRotation: boolean;
  /** false once retired: an exit is then expected, never restarted. */
  wanted: boolean;
  /** Restarts since the slot's fresh start (kept across daemon restarts, like crashes and lastExit). */
  restarts: number;
  /** Crashes in a row without staying up long. */
  crashes: number;
  upSince: number;
  lastExit: string | null;
  timer: NodeJS.Timeout | null;
}

export interface ProcessSupervisor {
  list(app?: string): ProcView[];
  launch(
    release: Release,
    type: string,
    n: number,
    onInfo?: (line: string) => void,
    opts?: { keepOnFailure?: boolean; resume?: boolean },
  ): Promise<ProcView>;
  adopt(
    info: ContainerInfo,
    labels: { type: string; n: string },
    release: Release,
    inRotation: boolean,
  ): ProcView;
  /**
   * Puts web processes into and takes processes out of the route, then routes every app it
   * touched in one switch each (so a swap never passes through an empty backend set);
   * resolves when the backends it dropped have drained.
   */
  setRotation(change: { into?: readonly ProcView[]; outOf?: readonly ProcView[] }): Promise<void>;
  retire(proc: ProcView, graceMs: number): Promise<void>;
  backends(app: string): Backend[];
  stop(): void;
}

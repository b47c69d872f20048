// What the pipeline needs from the rest of paas, passed in by the daemon (STYLE.md §9: the
// daemon wires, the pipeline works). Each field is a real part; tests pass the real ones.
import type { AppName, ProcessType, Release, State } from '../apps/index.ts';
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
  /**
   * `--scheduler swarm` (src/scheduler): app processes are placed by it instead of the
   * supervisor, which then runs nothing. Unset: local, the supervisor and runtime.
   */
  scheduler?: SchedulerPort;
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

/** Where the router sends a web process's traffic. */
export interface Address {
  host: string;
  port: number;
}

/** One running (or starting, or failing) process as its scheduler sees it. */
export interface ScheduledProcess {
  type: string;
  /** 1-based slot within its type (Swarm's task slot). */
  n: number;
  version: number;
  state: ProcState;
  /** The backend's handle: a container id (local) or a task id (swarm). */
  id: string;
  /** Routable address of a healthy web process in rotation; null for anything else. */
  address: Address | null;
}

/** One line a process wrote, as `logs` hands it out. */
export interface ProcessLogLine {
  /** `web.1`: type and slot. */
  ps: string;
  text: string;
}

export interface RunIO {
  stdin?: NodeJS.ReadableStream;
  onData: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Aborted when the caller went away: the one-off is killed. */
  signal: AbortSignal;
}

/**
 * A scheduler that places app processes somewhere other than our own supervisor on this box
 * (`paas daemon --scheduler`; src/scheduler's `Scheduler` is this port). The pipeline and the
 * API hand it the verbs that touch processes; unset (`local`, the default), they run on the
 * supervisor and runtime exactly as they always did. Declared here, as the router's port
 * is, so src/deploy never imports src/scheduler (which is built on src/deploy).
 */
export interface SchedulerPort {
  readonly name: string;
  /**
   * Rolls the app's processes over to `release` at the app's formation, type by type, web
   * first, start-first: new processes start and pass the release's checks before old ones
   * stop, and the router follows. `onLive` runs once the route points at the new release.
   * A failed check rolls back (the old release keeps serving) and throws DeployFailed.
   * The caller holds the app's lock (the pipeline does).
   */
  deploy(release: Release, out: Output, onLive?: () => void): Promise<void>;
  /** ps:scale: sets formation entries and converges; takes the app's lock. */
  scale(app: AppName, changes: ReadonlyMap<ProcessType, number>): Promise<Record<string, number>>;
  /** The app's processes, sorted by type then slot. */
  processes(app: AppName): Promise<ScheduledProcess[]>;
  /** The last `lines` lines of the app's processes, oldest first. */
  logs(app: AppName, lines: number): Promise<ProcessLogLine[]>;
  /** A one-off `run` process of the release with its config; resolves to its exit code. */
  run(release: Release, command: readonly string[], io: RunIO): Promise<number>;
  /** Stops and removes every process of the app (apps:destroy); the state is the caller's. */
  destroy(app: AppName): Promise<void>;
  /** The web backends the router was last given for the app (the route table's rows). */
  routes(app: string): Backend[];
  /** The daemon is going down; processes keep running. */
  close(): void;
}

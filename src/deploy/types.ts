// What the pipeline needs from the rest of paas, passed in by the daemon (STYLE.md §9: the
// daemon wires, the pipeline works). Each field is a real part; tests pass the real ones.
import type { State } from '../apps/index.ts';
import type { LogCollector, LogStore } from '../logs/index.ts';
import type { Image, ImageStore } from '../registry/index.ts';
import type { Runtime } from '../runtime/index.ts';
import type { Backend, RouteTable } from '../router/index.ts';

/** The builder's entry point (src/build): a Dockerfile context in, a stored image out. */
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
}) => Promise<{ image: Image }>;

/** The part of the router client the pipeline uses. */
export interface RouterPort {
  switch(app: string, backends: Backend[]): Promise<{ drained: boolean }>;
  setRoutes(table: RouteTable): Promise<{ drained: boolean }>;
}

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
  /** How long a new web process may take to accept on its port. */
  startTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL for retired processes. */
  stopGraceMs?: number;
}

/** Where a step's output goes: the pusher's terminal and the app's log. */
export interface Output {
  write(text: string): void;
  readonly signal?: AbortSignal;
}

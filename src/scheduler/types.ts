// What a scheduler is to paas: the part of a deploy that places processes somewhere and
// keeps them running. The pipeline (src/deploy) owns receive, build, release, the release
// phase and the state; a scheduler owns where an app's processes run, how a release rolls
// over them, and where the router finds them. `local` is our own runtime and supervisor on
// this box; `swarm` hands the same work to Docker Swarm; Kubernetes is the next one
// (docs/scaling.md). Every backend passes contract.case.ts.
import type { AppName, ProcessType, Release } from '../apps/index.ts';
import type {
  Output,
  ProcessLogLine,
  RunIO,
  ScheduledProcess,
  SchedulerPort,
} from '../deploy/index.ts';

export const SCHEDULER_NAMES = ['local', 'swarm'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

// The shapes are declared by src/deploy's port (SchedulerPort), which the pipeline and the
// API call; a Scheduler is that port with a known name.
export type { Address, ProcessLogLine, RunIO, ScheduledProcess } from '../deploy/index.ts';

export interface Scheduler extends SchedulerPort {
  readonly name: SchedulerName;
  /**
   * Rolls the app's processes over to `release` at the app's formation, type by type, web
   * first, start-first: new processes start and pass the release's checks before old ones
   * stop, and the router follows. `onLive` runs once the route points at the new release.
   * A failed check rolls back (the old release keeps serving) and throws DeployFailed.
   * The caller holds the app's lock (the pipeline does).
   */
  deploy(release: Release, out: Output, onLive?: () => void): Promise<void>;
  /** Sets formation entries (ps:scale) and converges on them; takes the app's lock. */
  scale(app: AppName, changes: ReadonlyMap<ProcessType, number>): Promise<Record<string, number>>;
  /** The app's processes, sorted by type then slot. */
  processes(app: AppName): Promise<ScheduledProcess[]>;
  /** The last `lines` lines of the app's processes, oldest first. */
  logs(app: AppName, lines: number): Promise<ProcessLogLine[]>;
  /** A one-off `run` process of the release with its config; resolves to its exit code. */
  run(release: Release, command: readonly string[], io: RunIO): Promise<number>;
  /** Stops and removes every process of the app (apps:destroy); the state is the caller's. */
  destroy(app: AppName): Promise<void>;
  /** The daemon is going down; processes keep running. */
  close(): void;
}

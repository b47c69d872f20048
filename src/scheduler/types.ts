// What a scheduler is to paas: the part of a deploy that places processes somewhere and
// keeps them running. The pipeline (src/deploy) owns receive, build, release, the release
// phase and the state; a scheduler owns where an app's processes run, how a release rolls
// over them, and where the router finds them. `local` is our own runtime and supervisor on
// this box; `swarm` hands the same work to Docker Swarm; Kubernetes is the next one
// (docs/scaling.md). Every backend passes contract.case.ts.
import type { SchedulerPort } from '../deploy/index.ts';

export const SCHEDULER_NAMES = ['local', 'swarm'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

// The shapes are declared by src/deploy's port (SchedulerPort), which the pipeline and the
// API call; a Scheduler is that port with a known name.
export type { Address, ProcessLogLine, RunIO, ScheduledProcess } from '../deploy/index.ts';

export interface Scheduler extends SchedulerPort {
  readonly name: SchedulerName;
}

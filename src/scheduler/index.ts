// Public surface of the schedulers: the interface, the one validator of a scheduler name,
// and the selector, which errors on the unknown (STYLE.md §3: chosen loudly).
import { UnknownScheduler } from '../errors/index.ts';
import type { DeployDeps } from '../deploy/index.ts';
import { LocalScheduler } from './local.ts';
import { SCHEDULER_NAMES, type Scheduler, type SchedulerName } from './types.ts';

export { LocalScheduler } from './local.ts';
export { followRoutes, backendsOf, type RouteFollower } from './follow.ts';
export { SwarmScheduler, type SwarmDeps } from './swarm.ts';
export { Engine, registryAuth } from './engine.ts';
export { serviceSpec, serviceName } from './swarm-spec.ts';
export { SCHEDULER_NAMES } from './types.ts';
export type {
  Address,
  ProcessLogLine,
  RunIO,
  ScheduledProcess,
  Scheduler,
  SchedulerName,
} from './types.ts';

/** `--scheduler`'s validator: a name we have a backend for, or UnknownScheduler. */
export function parseSchedulerName(raw: unknown): SchedulerName {
  if (typeof raw === 'string' && (SCHEDULER_NAMES as readonly string[]).includes(raw))
    return raw as SchedulerName;
  throw new UnknownScheduler(
    `unknown scheduler ${JSON.stringify(String(raw)).slice(0, 40)}: use one of ${SCHEDULER_NAMES.join(', ')}`,
    { scheduler: String(raw).slice(0, 40) },
  );
}

/** The local scheduler over the daemon's deploy dependencies. */
export function localScheduler(deps: DeployDeps): Scheduler {
  return new LocalScheduler(deps);
}

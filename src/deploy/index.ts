// Public surface of the pipeline: a push, a config change, a rollback; formation and the
// supervisor of every app process; a one-off run; image GC; and what the daemon needs at
// start (adoption, routes) and for apps:destroy.
import { Supervisor, type RestartPolicy } from './supervisor.ts';
import type { DeployDeps, ProcessDeps } from './types.ts';

export { handlePush, changeConfig, rollback, type ReleaseResult } from './pipeline.ts';
export { deployRelease, replaceProcesses, processOrder, wanted, stopGraceMs } from './deploy.ts';
export { Reporter } from './report.ts';
export { scale, converge, restartApp, stopApp, startApp } from './formation.ts';
export { adopt, destroyApp } from './recover.ts';
export { routeTable, publishRoutes } from './routes.ts';
export {
  appProcesses,
  processEnv,
  resourcesFor,
  runAttached,
  webPort,
  exposedTcpPorts,
  DEFAULT_PORT,
} from './processes.ts';
export { collectImages, collectImagesNow, type ImageGcReport } from './gc.ts';
export { backoffMs, DEFAULT_RESTART_POLICY, type RestartPolicy } from './supervisor.ts';
export { parseAppJsonChecks, imageCheck } from './health.ts';
export { appUrl } from './report.ts';
export { DEFAULT_APP_LIMITS } from './types.ts';
export type {
  AppLimits,
  DeployDeps,
  BuildFn,
  RouterPort,
  Output,
  ProcView,
  ProcessDeps,
  ProcState,
  ProcessSupervisor,
  SchedulerPort,
  ScheduledProcess,
  ProcessLogLine,
  RunIO,
  Address,
} from './types.ts';

/** The deploy dependencies with their supervisor, built on the rest of them. */
export function withSupervisor(
  parts: ProcessDeps,
  policy: Partial<RestartPolicy> = {},
): DeployDeps {
  return { ...parts, supervisor: new Supervisor(parts, policy) };
}

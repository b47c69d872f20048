// Public surface of the pipeline: a push, a config change, a rollback, and what the daemon
// needs at start (adoption, routes) and for apps:destroy.
export { handlePush, changeConfig, rollback, type ReleaseResult } from './pipeline.ts';
export { deployRelease } from './deploy.ts';
export { adopt, destroyApp } from './recover.ts';
export { routeTable, publishRoutes } from './routes.ts';
export { appProcesses, processEnv, DEFAULT_PORT } from './processes.ts';
export { parseProcfile } from './build.ts';
export { appUrl } from './report.ts';
export type { DeployDeps, BuildFn, RouterPort, Output } from './types.ts';

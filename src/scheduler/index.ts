// Public surface of the schedulers: the interface, the one validator of a scheduler name,
// and the selector, which errors on the unknown (STYLE.md §3: chosen loudly).
import { InvalidArgument, UnknownScheduler } from '../errors/index.ts';
import type { DeployDeps, ProcessDeps, RouterPort } from '../deploy/index.ts';
import { LocalScheduler } from './local.ts';
import { Engine } from './engine.ts';
import { SCHEDULER_NAMES, type Scheduler, type SchedulerName } from './types.ts';

export { LocalScheduler } from './local.ts';
export { followRoutes, backendsOf, type RouteFollower } from './follow.ts';
// The Swarm backend itself (swarm.ts) loads only with `--scheduler swarm`: every daemon reads
// this surface for the validators, and most never drive Swarm (test/lazy-imports.test.ts).
export type { SwarmScheduler, SwarmDeps } from './swarm.ts';
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

export interface SwarmOptions {
  /** The manager engine's API socket (`--docker-socket`, default /var/run/docker.sock). */
  socket?: string;
  /** Our registry as the nodes reach it, `host:port` (`--registry-address`). */
  registry: string | (() => string);
  /** The credentials the nodes pull with (read at each service change). */
  token: string | (() => string);
  router: Pick<RouterPort, 'switch'>;
  onError?: (e: unknown) => void;
}

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * `--scheduler swarm`: the backend over the manager's engine, checked to be a Swarm manager
 * and already following every app's web tasks into the router when this resolves.
 */
export async function startSwarmScheduler(
  deps: ProcessDeps,
  opts: SwarmOptions,
): Promise<Scheduler> {
  const { SwarmScheduler } = await import('./swarm.ts');
  const s = new SwarmScheduler({
    state: deps.state,
    store: deps.store,
    logs: deps.logs,
    defaultLimits: deps.defaultLimits,
    stopGraceMs: deps.stopGraceMs,
    startTimeoutMs: deps.startTimeoutMs,
    engine: new Engine(opts.socket ?? DEFAULT_DOCKER_SOCKET),
    registry: opts.registry,
    token: opts.token,
    router: opts.router,
    onError: opts.onError,
  });
  await s.start();
  return s;
}

/** The local scheduler over the daemon's deploy dependencies. */
export function localScheduler(deps: DeployDeps): Scheduler {
  return new LocalScheduler(deps);
}

/**
 * `--docker-socket` and `--registry-address`'s validator: an absolute socket path and a
 * `host:port` the nodes pull from; both only mean something with `--scheduler swarm`.
 */
export function parseSwarmFlags(
  scheduler: SchedulerName,
  raw: { socket?: string; registry?: string },
): { socket?: string; registry?: string } {
  if (scheduler !== 'swarm' && (raw.socket !== undefined || raw.registry !== undefined))
    throw new InvalidArgument('--docker-socket and --registry-address go with --scheduler swarm');
  if (raw.socket !== undefined && !raw.socket.startsWith('/'))
    throw new InvalidArgument(
      `--docker-socket must be an absolute path, not ${JSON.stringify(raw.socket).slice(0, 80)}`,
      { field: 'docker-socket' },
    );
  if (raw.registry !== undefined) {
    const m = /^([a-z0-9]([a-z0-9.-]{0,252})?):([0-9]{1,5})$/i.exec(raw.registry);
    if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65535)
      throw new InvalidArgument(
        `--registry-address must be HOST:PORT as the Swarm nodes reach the API port, not ${JSON.stringify(raw.registry).slice(0, 80)}`,
        { field: 'registry-address' },
      );
  }
  return raw;
}

// The Swarm service of one process type of a release, as the Engine API takes it
// (ServiceSpec, API v1.41). Pure: the release, its environment and limits in, JSON out, so
// what paas asks of Swarm is readable and tested without an engine.
import type { Release } from '../apps/index.ts';
import type { Limits } from '../runtime/index.ts';

const NS_PER_MS = 1_000_000;

/** `<app>_<type>`: app names and process types are already validated, and Swarm allows both. */
export function serviceName(app: string, type: string): string {
  return `${app}_${type}`;
}

/**
 * The stop signal of a held web task: SIGCONT continues a stopped process and does nothing
 * to a running one, so no app mistakes it for a request to stop.
 */
export const HOLD_SIGNAL = 'SIGCONT';

export const LABEL = { app: 'paas.app', type: 'paas.type', release: 'paas.release' } as const;

export interface ServiceInput {
  release: Release;
  type: string;
  command: readonly string[];
  /** Where the nodes pull the image: `<registry host>/<repo>:<tag>`. */
  image: string;
  env: Record<string, string>;
  replicas: number;
  limits: Limits;
  /** web: the port the process listens on, published on its node; null for other types. */
  port: number | null;
  stopGraceMs: number;
  /**
   * web with a router following it: Swarm stops the task with HOLD_SIGNAL, which changes
   * nothing, so it keeps serving until paas took it out of the route, drained it and sent
   * the SIGTERM itself (swarm.ts, followApp); Swarm has no pre-stop hook to wait on.
   */
  holdStop?: boolean;
  /** How long a new task must stay up before an update counts it healthy. */
  monitorMs: number;
}

export function serviceSpec(s: ServiceInput): Record<string, unknown> {
  const { release, type } = s;
  const labels = {
    [LABEL.app]: release.app,
    [LABEL.type]: type,
    [LABEL.release]: `v${release.version}`,
  };
  // A failed update is undone by Swarm itself (FailureAction rollback) and the undo keeps
  // the same order, so the old tasks serve until the new ones are up in both directions.
  const rolling = {
    Parallelism: 1,
    Order: 'start-first',
    Monitor: s.monitorMs * NS_PER_MS,
    MaxFailureRatio: 0,
  };
  return {
    Name: serviceName(release.app, type),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: s.image,
        Command: [...s.command],
        Env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
        Labels: labels,
        Hostname: `${release.app}.${type}.{{.Task.Slot}}`,
        StopGracePeriod: s.stopGraceMs * NS_PER_MS,
        ...(s.holdStop === true ? { StopSignal: HOLD_SIGNAL } : {}),
      },
      Resources: {
        Limits: {
          ...(s.limits.memoryBytes === undefined ? {} : { MemoryBytes: s.limits.memoryBytes }),
          ...(s.limits.cpus === undefined ? {} : { NanoCPUs: Math.round(s.limits.cpus * 1e9) }),
          ...(s.limits.pids === undefined ? {} : { Pids: s.limits.pids }),
        },
      },
      // Heroku's rule, as on one box: a process that exits is restarted, one stopped on
      // purpose is not.
      RestartPolicy: { Condition: 'on-failure', Delay: 1000 * NS_PER_MS, MaxAttempts: 0 },
    },
    Mode: { Replicated: { Replicas: s.replicas } },
    UpdateConfig: { ...rolling, FailureAction: 'rollback' },
    RollbackConfig: { ...rolling, FailureAction: 'pause' },
    // Host-mode published ports (docs/scaling.md): each web task gets its own port on its
    // node, which the router on the manager reaches directly; no routing mesh (IPVS) between.
    EndpointSpec:
      s.port === null
        ? { Mode: 'dnsrr' }
        : {
            Mode: 'dnsrr',
            Ports: [{ Protocol: 'tcp', TargetPort: s.port, PublishMode: 'host' }],
          },
  };
}

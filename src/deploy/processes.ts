// Starting and retiring one release's processes. A process is a container labelled
// {app, release, type, n}; the labels are how the daemon finds its processes again after a
// restart (containers outlive it). The supervisor (supervisor.ts) builds slots on these.
import { randomBytes } from 'node:crypto';
import { parsePort, type AppName, type Release } from '../apps/index.ts';
import { ContainerNotFound, DeployFailed, describeError } from '../errors/index.ts';
import type { ContainerConfig, Healthcheck } from '../registry/index.ts';
import type { ContainerInfo, Limits, RunTerminal } from '../runtime/index.ts';
import { Storage } from '../storage/index.ts';
import { linkVolumes } from '../services/index.ts';
import { DEFAULT_APP_LIMITS, type ProcessDeps } from './types.ts';

export const DEFAULT_PORT = 5000;

export interface ProcessLabels {
  app: string;
  release: string;
  type: string;
  n: string;
  /** web: the port it listens on (absent on containers started before ports were labelled). */
  port?: string;
}

export function labelsOf(c: ContainerInfo): ProcessLabels | null {
  const l = c.labels;
  if (
    typeof l.app !== 'string' ||
    typeof l.release !== 'string' ||
    typeof l.type !== 'string' ||
    typeof l.n !== 'string'
  )
    return null;
  const out: ProcessLabels = { app: l.app, release: l.release, type: l.type, n: l.n };
  if (typeof l.port === 'string') out.port = l.port;
  return out;
}

/** The TCP ports an image EXPOSEs (`8080/tcp`, or a bare `8080`: TCP by default). */
export function exposedTcpPorts(cfg: ContainerConfig): number[] {
  const out: number[] = [];
  for (const key of Object.keys(cfg.ExposedPorts ?? {})) {
    const m = /^([0-9]{1,5})(?:\/tcp)?$/i.exec(key);
    if (m !== null) out.push(Number(m[1]));
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/**
 * The port a web process listens on and is routed to, and why (the deploy output says it).
 * Dokku's rule: the app's PORT config (`ports:set`) wins; else an image that EXPOSEs exactly
 * one TCP port gets that one (the official nginx listens on its EXPOSEd 80 and ignores PORT);
 * else 5000. PORT is set to the port either way, so PORT stays the contract.
 */
export function webPort(release: Release, cfg: ContainerConfig): { port: number; why: string } {
  if (release.config.PORT !== undefined) {
    try {
      return { port: parsePort(release.config.PORT), why: 'the PORT config (ports:set)' };
    } catch (e) {
      throw new DeployFailed(
        `${describeError(e)}: the PORT config var of ${release.app} (ports:set or config:unset it)`,
        { step: 'start' },
      );
    }
  }
  const tcp = exposedTcpPorts(cfg);
  if (tcp.length === 1) return { port: tcp[0]!, why: `the image EXPOSEs ${tcp[0]}/tcp only` };
  return {
    port: DEFAULT_PORT,
    why:
      tcp.length === 0
        ? 'the default; the image EXPOSEs no TCP port'
        : `the default; the image EXPOSEs ${tcp.length} TCP ports (ports:set one)`,
  };
}

/** The deploy output's line on the web port: which one, and why. */
export async function webPortLine(deps: ProcessDeps, release: Release): Promise<string> {
  const image = await deps.store.resolveImage(release.image);
  const { port, why } = webPort(release, image.config);
  return `web port ${port}: ${why}`;
}

/** The environment a process sees: image ENV, then the release's config, then PORT for web. */
export function processEnv(
  imageEnv: readonly string[] | undefined,
  release: Release,
  type: string,
  port: number = DEFAULT_PORT,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of imageEnv ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  Object.assign(env, release.config);
  if (type === 'web') env.PORT = String(port);
  env.PAAS_APP = release.app;
  env.PAAS_RELEASE = `v${release.version}`;
  return env;
}

async function containerSpec(
  deps: ProcessDeps,
  release: Release,
  type: string,
  command: readonly string[],
  n: number | null,
  labels: Record<string, string>,
) {
  const image = await deps.store.resolveImage(release.image);
  const lowers = await deps.store.layerDirs(image);
  const cfg = image.config;
  const port = type === 'web' ? webPort(release, cfg).port : DEFAULT_PORT;
  const spec = {
    id: `${release.app}.${type}.${n ?? 'run'}.v${release.version}.${randomBytes(3).toString('hex')}`,
    rootfs: { lowers },
    command: [...command],
    env: processEnv(cfg.Env, release, type, port),
    cwd: cfg.WorkingDir !== undefined && cfg.WorkingDir !== '' ? cfg.WorkingDir : '/',
    user: cfg.User !== undefined && cfg.User !== '' ? cfg.User : undefined,
    hostname: `${release.app}.${type}.${n ?? 'run'}`,
    net: 'bridge' as const,
    // storage:mount's volumes: every process of the app, whatever its release, sees them.
    // and each linked service's socket directory (services:link), which only they get.
    volumes: [
      ...new Storage(deps.state.db, deps.dataDir).volumes(release.app),
      ...linkVolumes(deps.state.db, deps.dataDir, release.app),
    ],
    // A web process carries its port, so a daemon that adopts it after a restart routes there.
    labels: type === 'web' ? { ...labels, port: String(port) } : labels,
  };
  return { spec, image, port };
}

export interface StartedProcess {
  info: ContainerInfo;
  port: number;
  type: string;
  n: number;
  /** The image's HEALTHCHECK, for the checks the process must pass. */
  healthcheck: Healthcheck | undefined;
}

/** Creates and starts `type.n` of the release with the app's resource limits for that type. */
export async function startProcess(
  deps: ProcessDeps,
  release: Release,
  type: string,
  n: number,
): Promise<StartedProcess> {
  const command = release.processes[type];
  if (command === undefined)
    throw new DeployFailed(`release v${release.version} has no process type "${type}"`, {
      step: 'start',
    });
  const labels = { app: release.app, release: `v${release.version}`, type, n: String(n) };
  const { spec, image, port } = await containerSpec(deps, release, type, command, n, labels);
  const created = await deps.runtime.create({
    ...spec,
    ...resourcesFor(deps, release.app, type),
  });
  deps.collector.watchContainer(created.id, release.app, `${type}.${n}`, created.logPath);
  try {
    const info = await deps.runtime.start(created.id);
    return {
      info,
      port,
      type,
      n,
      healthcheck: image.config.Healthcheck,
    };
  } catch (e) {
    await removeContainer(deps, created.id, 0);
    throw e;
  }
}

/**
 * The limits and capabilities a process of `type` starts with: resources:set's, else the
 * daemon's defaults, so no app process is ever unbounded in memory or tasks.
 */
export function resourcesFor(
  deps: Pick<ProcessDeps, 'state' | 'defaultLimits'>,
  app: AppName,
  type: string,
): { limits: Limits; netRaw: boolean } {
  const r = deps.state.apps.resourcesFor(app, type);
  const d = deps.defaultLimits ?? DEFAULT_APP_LIMITS;
  return {
    limits: { memoryBytes: r.memoryBytes ?? d.memoryBytes, cpus: r.cpus, pids: r.pids ?? d.pids },
    netRaw: r.netRaw === true,
  };
}

/** Stops (SIGTERM, then SIGKILL after the grace) and removes a container, keeping its last log lines. */
export async function removeContainer(
  deps: ProcessDeps,
  id: string,
  graceMs: number,
): Promise<void> {
  let app: string | undefined;
  try {
    const info = await deps.runtime.inspect(id);
    app = info.labels.app;
    if (info.state === 'running') await deps.runtime.stop(id, { graceMs });
  } catch {
    // Already gone.
  }
  deps.collector.unwatchContainer(id);
  await deps.runtime.remove(id, { force: true }).catch((e: unknown) => {
    // Not thrown: the process is stopped either way, and a container that could not be
    // removed keeps its meta, so the daemon's next start retires it again. Said, not hidden.
    if (app !== undefined && !(e instanceof ContainerNotFound))
      deps.logs.append(app, {
        source: 'system',
        text: `could not remove container ${id}: ${describeError(e)}`,
      });
  });
}

/** Runs a one-off container of the release (release phase); output lines go to onLine. */
export async function runOneOff(
  deps: ProcessDeps,
  release: Release,
  command: readonly string[],
  type: string,
  onLine: (line: string) => void,
): Promise<number> {
  const labels = { app: release.app, release: `v${release.version}`, type, n: 'run', oneoff: '1' };
  const { spec } = await containerSpec(deps, release, type, command, null, labels);
  const r = await deps.runtime.run(
    { ...spec, ...resourcesFor(deps, release.app, type) },
    { stdio: 'pipe', onLine: (_stream, line) => onLine(line) },
  );
  return r.exitCode;
}

export interface Attached {
  stdin: NodeJS.ReadableStream;
  /** A terminal for the command (interactive `paas run`): output comes as stdout only. */
  tty?: RunTerminal;
  onData: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Aborted when the client went away: the container is killed. */
  signal: AbortSignal;
}

/**
 * `paas run`: a one-off `run` process of the app's live release with its config and the
 * limits of type `run`, stdin/stdout/stderr attached; the container is removed afterwards.
 */
export async function runAttached(
  deps: ProcessDeps,
  release: Release,
  command: readonly string[],
  io: Attached,
): Promise<number> {
  const labels = {
    app: release.app,
    release: `v${release.version}`,
    type: 'run',
    n: 'run',
    oneoff: '1',
  };
  const { spec } = await containerSpec(deps, release, 'run', command, null, labels);
  // The runtime kills the foreground process on abort, even one aborted before it started.
  const r = await deps.runtime.run(
    { ...spec, ...resourcesFor(deps, release.app, 'run') },
    { stdio: 'pipe', stdin: io.stdin, onData: io.onData, tty: io.tty, signal: io.signal },
  );
  return r.exitCode;
}

/** Every process container of an app, from the runtime's own records. */
export async function appProcesses(
  deps: ProcessDeps,
  app: string,
): Promise<{ info: ContainerInfo; labels: ProcessLabels }[]> {
  const out: { info: ContainerInfo; labels: ProcessLabels }[] = [];
  for (const c of await deps.runtime.list()) {
    const l = labelsOf(c);
    if (l !== null && l.app === app && c.labels.oneoff !== '1') out.push({ info: c, labels: l });
  }
  return out;
}

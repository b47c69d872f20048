// Starting and retiring one release's processes. A process is a container labelled
// {app, release, type, n}; the labels are how the daemon finds its processes again after a
// restart (containers outlive it). The processes issue builds formation on these.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Release } from '../apps/index.ts';
import { DeployFailed } from '../errors/index.ts';
import type { ContainerInfo } from '../runtime/index.ts';
import type { DeployDeps } from './types.ts';

export const DEFAULT_PORT = 5000;

export interface ProcessLabels {
  app: string;
  release: string;
  type: string;
  n: string;
}

export function labelsOf(c: ContainerInfo): ProcessLabels | null {
  const l = c.labels;
  if (typeof l.app !== 'string' || typeof l.release !== 'string' || typeof l.type !== 'string' || typeof l.n !== 'string') return null;
  return { app: l.app, release: l.release, type: l.type, n: l.n };
}

/** The environment a process sees: image ENV, then the release's config, then PORT for web. */
export function processEnv(imageEnv: readonly string[] | undefined, release: Release, type: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of imageEnv ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  Object.assign(env, release.config);
  if (type === 'web') env.PORT = release.config.PORT ?? String(DEFAULT_PORT);
  env.PAAS_APP = release.app;
  env.PAAS_RELEASE = `v${release.version}`;
  return env;
}

async function containerSpec(deps: DeployDeps, release: Release, type: string, command: readonly string[], n: number | null, labels: Record<string, string>) {
  const image = await deps.store.resolveImage(release.image);
  const lowers = await deps.store.layerDirs(image);
  const cfg = image.config;
  return {
    id: `${release.app}.${type}.${n ?? 'run'}.v${release.version}.${randomBytes(3).toString('hex')}`,
    rootfs: { lowers },
    command: [...command],
    env: processEnv(cfg.Env, release, type),
    cwd: cfg.WorkingDir !== undefined && cfg.WorkingDir !== '' ? cfg.WorkingDir : '/',
    user: cfg.User !== undefined && cfg.User !== '' ? cfg.User : undefined,
    hostname: `${release.app}.${type}.${n ?? 'run'}`,
    net: 'bridge' as const,
    labels,
  };
}

export interface StartedProcess {
  info: ContainerInfo;
  port: number;
  type: string;
  n: number;
}

export async function startProcess(deps: DeployDeps, release: Release, type: string, n: number): Promise<StartedProcess> {
  const command = release.processes[type];
  if (command === undefined) throw new DeployFailed(`release v${release.version} has no process type "${type}"`, { step: 'start' });
  const labels = { app: release.app, release: `v${release.version}`, type, n: String(n) };
  const spec = await containerSpec(deps, release, type, command, n, labels);
  const created = await deps.runtime.create(spec);
  deps.collector.watchContainer(created.id, release.app, `${type}.${n}`, created.logPath);
  try {
    const info = await deps.runtime.start(created.id);
    return { info, port: Number(spec.env.PORT ?? DEFAULT_PORT), type, n };
  } catch (e) {
    await retire(deps, created.id, 0);
    throw e;
  }
}

/**
 * Waits until the process accepts TCP on its port (the default health check, ARCHITECTURE.md),
 * failing early if it exits. The error carries the exit status and its last output lines.
 */
export async function waitUntilListening(deps: DeployDeps, p: StartedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await deps.runtime.inspect(p.info.id);
    if (info.state === 'exited') {
      const exit = info.exit;
      const how = exit === null ? 'exited' : exit.oomKilled ? 'was killed: out of memory' : exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
      throw new DeployFailed(`${p.type}.${p.n} ${how} before it accepted connections on port ${p.port}${lastOutput(info.logPath)}`, { step: 'start', exitCode: exit?.exitCode ?? null });
    }
    if (info.ip !== null && (await canConnect(info.ip, p.port, 1000))) return;
    if (Date.now() > deadline) {
      throw new DeployFailed(`${p.type}.${p.n} did not accept connections on port ${p.port} within ${Math.round(timeoutMs / 1000)}s (does it listen on $PORT?)${lastOutput(info.logPath)}`, { step: 'start' });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

function lastOutput(logPath: string, n = 5): string {
  try {
    const lines = readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-n).map((l) => l.replace(/^\S+ (stdout|stderr) ?/, ''));
    return lines.length > 0 && lines[0] !== '' ? `; its last output:\n${lines.map((l) => `  ${l.slice(0, 300)}`).join('\n')}` : '';
  } catch {
    return '';
  }
}

function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Stops (SIGTERM, then SIGKILL after the grace) and removes a process, keeping its last log lines. */
export async function retire(deps: DeployDeps, id: string, graceMs: number): Promise<void> {
  try {
    const info = await deps.runtime.inspect(id);
    if (info.state === 'running') await deps.runtime.stop(id, { graceMs });
  } catch {
    // Already gone.
  }
  deps.collector.unwatchContainer(id);
  await deps.runtime.remove(id, { force: true }).catch(() => undefined);
}

/** Runs a one-off container of the release (release phase, `paas run`); output goes to onLine. */
export async function runOneOff(deps: DeployDeps, release: Release, command: readonly string[], type: string, onLine: (line: string) => void): Promise<number> {
  const labels = { app: release.app, release: `v${release.version}`, type, n: 'run', oneoff: '1' };
  const spec = await containerSpec(deps, release, type, command, null, labels);
  const r = await deps.runtime.run(spec, { stdio: 'pipe', onLine: (_stream, line) => onLine(line) });
  return r.exitCode;
}

/** Every process container of an app, from the runtime's own records. */
export async function appProcesses(deps: DeployDeps, app: string): Promise<{ info: ContainerInfo; labels: ProcessLabels }[]> {
  const out: { info: ContainerInfo; labels: ProcessLabels }[] = [];
  for (const c of await deps.runtime.list()) {
    const l = labelsOf(c);
    if (l !== null && l.app === app && c.labels.oneoff !== '1') out.push({ info: c, labels: l });
  }
  return out;
}

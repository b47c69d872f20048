// Formation: how many processes of each type an app runs (Heroku's `ps:scale`), kept in the
// app's state, not the release. `converge` starts or stops just the difference between the
// formation and what runs; new web processes join the route only once healthy, and leaving
// ones are drained before they are stopped. ps:restart, ps:stop and ps:start live here too.
import type { AppName, ProcessType } from '../apps/index.ts';
import {
  Conflict,
  DeployFailed,
  describeError,
  InvalidArgument,
  Unsupported,
} from '../errors/index.ts';
import { processOrder, replaceProcesses, stopGraceMs, wanted } from './deploy.ts';
import { Reporter } from './report.ts';
import type { DeployDeps, Output, ProcView } from './types.ts';

const quiet: Output = { write: () => undefined };

/** Sets the formation for the given types and converges on it. */
export async function scale(
  deps: DeployDeps,
  app: AppName,
  changes: ReadonlyMap<ProcessType, number>,
): Promise<Record<string, number>> {
  // The scheduler keeps the formation's processes (and takes the lock) itself.
  if (deps.scheduler !== undefined) return deps.scheduler.scale(app, changes);
  const unlock = await deps.state.locks.acquire(app, 'scale');
  try {
    const a = deps.state.apps.get(app);
    if (a.liveRelease !== null) {
      const rel = deps.state.releases.get(app, a.liveRelease);
      const types = processOrder(rel);
      for (const t of changes.keys()) {
        if (!types.includes(t))
          throw new Conflict(
            `v${rel.version} of ${app} has no process type "${t}" (it has ${types.join(', ') || 'none'})`,
            { app, type: t },
          );
      }
    }
    for (const [t, q] of changes) deps.state.apps.setFormation(app, t, q);
    await converge(deps, app);
    return deps.state.apps.formation(app);
  } finally {
    unlock();
  }
}

/**
 * Makes what runs match the formation of the live release (nothing when the app is stopped):
 * extra processes are retired (highest n first), missing ones started, checked and routed.
 * Processes of other releases are retired. The caller holds the app's lock.
 */
export async function converge(
  deps: DeployDeps,
  app: AppName,
  log: (line: string) => void = () => undefined,
): Promise<void> {
  const sup = deps.supervisor;
  const a = deps.state.apps.get(app);
  const release = a.liveRelease === null ? null : deps.state.releases.get(app, a.liveRelease);
  const formation = deps.state.apps.formation(app);
  const grace = stopGraceMs(deps, release);
  const running = sup.list(app);
  const leaving: ProcView[] = running.filter(
    (p) =>
      release === null ||
      p.version !== release.version ||
      a.stopped ||
      release.processes[p.type] === undefined,
  );
  const starts: { type: string; n: number }[] = [];
  if (release !== null && !a.stopped) {
    for (const type of processOrder(release)) {
      const want = wanted(formation, type);
      const have = running
        .filter((p) => p.type === type && p.version === release.version)
        .sort((x, y) => x.n - y.n);
      leaving.push(...have.filter((p) => p.n > want));
      const taken = new Set(have.map((p) => p.n));
      for (let n = 1; n <= want; n++) if (!taken.has(n)) starts.push({ type, n });
    }
  }
  // Leaving web processes go out of the route first, in one switch, drained before they stop.
  await sup.setRotation({ outOf: leaving });
  await Promise.all(leaving.map((p) => sup.retire(p, grace)));
  if (starts.length === 0 || release === null) return;
  // A refilled slot carries on its recorded history (a daemon restart); scaled-away and
  // stopped slots left none, so scaling up and ps:start begin fresh.
  const results = await Promise.allSettled(
    starts.map((s) =>
      sup.launch(release, s.type, s.n, undefined, { keepOnFailure: true, resume: true }),
    ),
  );
  const joining = results.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
  // One switch for every new web process; an unhealthy slot joins the route when its
  // restart passes the checks.
  await sup.setRotation({ into: joining });
  for (const x of results) {
    if (x.status !== 'fulfilled') continue;
    if (!x.value.healthy) continue;
    log(`started ${x.value.type}.${x.value.n} of v${release.version}`);
    deps.logs.append(app, {
      source: 'system',
      text: `${x.value.type}.${x.value.n}: started v${release.version}`,
    });
  }
  const failed = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed.length > 0) {
    throw new DeployFailed(failed.map((f) => describeError(f.reason)).join('\n'), {
      step: 'start',
    });
  }
}

/** ps:restart: a rolling replacement of every process (start new → check → switch → stop old). */
export async function restartApp(
  deps: DeployDeps,
  app: AppName,
  out: Output = quiet,
  type?: ProcessType,
): Promise<void> {
  notOnScheduler(deps, 'ps:restart');
  const unlock = await deps.state.locks.acquire(app, 'restart');
  try {
    const a = deps.state.apps.get(app);
    if (a.liveRelease === null)
      throw new Conflict(`${app} has no release to restart; push one first`, { app });
    const release = deps.state.releases.get(app, a.liveRelease);
    if (type !== undefined) {
      if (release.processes[type] === undefined)
        throw new InvalidArgument(`${app} (v${a.liveRelease}) has no process type "${type}"`, {
          app,
          type,
        });
      if (a.stopped)
        throw new Conflict(`${app} is stopped (ps:stop); ps:start it, or ps:restart it whole`, {
          app,
        });
    }
    deps.state.apps.setStopped(app, false);
    const r = new Reporter(app, out, deps.logs);
    r.step(`Restarting ${type === undefined ? app : `${type} of ${app}`} (v${a.liveRelease})`);
    await replaceProcesses(deps, release, r, undefined, type);
  } finally {
    unlock();
  }
}

/** ps:stop: every process stops and stays stopped (across daemon restarts) until ps:start or a deploy. */
export function stopApp(deps: DeployDeps, app: AppName): Promise<void> {
  return setRunning(deps, app, false);
}

export function startApp(deps: DeployDeps, app: AppName): Promise<void> {
  return setRunning(deps, app, true);
}

async function setRunning(deps: DeployDeps, app: AppName, running: boolean): Promise<void> {
  notOnScheduler(deps, running ? 'ps:start' : 'ps:stop');
  const unlock = await deps.state.locks.acquire(app, running ? 'start' : 'stop');
  try {
    deps.state.apps.get(app);
    deps.state.apps.setStopped(app, !running);
    deps.logs.append(app, {
      source: 'system',
      text: running ? 'starting the formation (ps:start)' : 'stopping every process (ps:stop)',
    });
    await converge(deps, app);
  } finally {
    unlock();
  }
}

/** The verbs not carried over to a scheduler yet (docs/scaling.md) say so instead of doing nothing. */
function notOnScheduler(deps: DeployDeps, verb: string): void {
  if (deps.scheduler !== undefined)
    throw new Unsupported(`${verb} is not available with --scheduler ${deps.scheduler.name} yet`, {
      scheduler: deps.scheduler.name,
    });
}

// Step 4 of the pipeline: put a release live without taking the app down. Per process type,
// web first, start the formation's processes of the new release and check them; then switch
// the route atomically to the new web processes (the router resolves once the old ones
// drained), record the release live, and retire the old processes: SIGTERM, SIGKILL after
// the grace. Any failure before the switch retires the new processes and leaves the old
// release serving. Rolling restarts (`ps:restart`) run the same sequence for the live release.
import { parseProcessType, type Release } from '../apps/index.ts';
import { DeployFailed, describeError } from '../errors/index.ts';
import { runOneOff, webPortLine } from './processes.ts';
import type { Reporter } from './report.ts';
import {
  DEFAULT_STOP_GRACE_MS,
  type DeployDeps,
  type ProcessDeps,
  type ProcView,
} from './types.ts';

export async function deployRelease(
  deps: DeployDeps,
  release: Release,
  r: Reporter,
): Promise<void> {
  const { app, version } = release;
  // Nothing has been live yet: app.json's first-deploy conventions apply (formation, Heroku's
  // scripts.postdeploy). A failed first deploy leaves it so, and the next push tries again.
  const first = deps.state.apps.get(app).liveRelease === null;
  deps.state.releases.markDeploying(app, version);
  try {
    await r.timed('Running release phase…', () => releasePhase(deps, release, r));
    // A deploy starts a stopped app (Dokku does the same).
    deps.state.apps.setStopped(app, false);
    if (first) initialFormation(deps, release, r);
    const live = () => deps.state.releases.finishDeploy(app, version, { ok: true });
    // `--scheduler swarm`: the scheduler rolls the processes over; the release phase above
    // and postdeploy below stay one-offs on this box.
    if (deps.scheduler !== undefined) await deps.scheduler.deploy(release, r.output, live);
    else await replaceProcesses(deps, release, r, live);
  } catch (e) {
    if (deps.state.releases.get(app, version).deploy?.status === 'deploying') {
      deps.state.releases.finishDeploy(app, version, { ok: false, error: describeError(e) });
    }
    throw e;
  }
  await postdeploy(deps, release, r, first);
}

/**
 * app.json `formation` (`{"web": {"quantity": 2}}`) is the scale an app starts with, so it is
 * applied on the first deploy only: afterwards the formation is the operator's (ps:scale),
 * and a later app.json does not undo their choice.
 */
function initialFormation(deps: DeployDeps, release: Release, r: Reporter): void {
  const f = release.appJson.formation;
  if (f === undefined) return;
  const set: string[] = [];
  for (const [type, quantity] of Object.entries(f)) {
    if (release.processes[type] === undefined) {
      r.info(`app.json formation: v${release.version} has no process type "${type}"; skipped`);
      continue;
    }
    deps.state.apps.setFormation(release.app, parseProcessType(type), quantity);
    set.push(`${type}=${quantity}`);
  }
  if (set.length > 0) r.info(`app.json formation: ${set.join(' ')} (first deploy)`);
}

/**
 * After the switch, once per deploy: `scripts.dokku.postdeploy`, and on the app's first deploy
 * Heroku's `scripts.postdeploy`; each a one-off container of the new release. The release is
 * live by now, so a failure is reported and logged, never rolled back (Dokku does the same).
 */
async function postdeploy(
  deps: DeployDeps,
  release: Release,
  r: Reporter,
  first: boolean,
): Promise<void> {
  const commands: { name: string; line: string }[] = [];
  if (first && release.appJson.firstPostdeploy !== undefined)
    commands.push({ name: 'app.json scripts.postdeploy', line: release.appJson.firstPostdeploy });
  if (release.appJson.postdeploy !== undefined)
    commands.push({ name: 'app.json postdeploy', line: release.appJson.postdeploy });
  if (commands.length === 0) return;
  await r.timed('Running postdeploy…', async () => {
    for (const c of commands) {
      r.info(`$ ${c.name}`);
      let failure: string | null = null;
      try {
        const code = await runOneOff(deps, release, ['/bin/sh', '-c', c.line], 'release', (l) =>
          r.build(l),
        );
        if (code !== 0) failure = `exit code ${code}`;
      } catch (e) {
        failure = describeError(e);
      }
      if (failure !== null)
        r.error(`${c.name} failed (${failure}); v${release.version} stays live`);
    }
  });
}

/** Process types in start order: web first, then the others by name; `release` never runs. */
export function processOrder(release: Release): string[] {
  return Object.keys(release.processes)
    .filter((t) => t !== 'release')
    .sort((a, b) => (a === 'web' ? -1 : b === 'web' ? 1 : a.localeCompare(b)));
}

/** How many `type` processes the formation wants: its row, else 1 for web and 0 for others (Heroku). */
export function wanted(formation: Readonly<Record<string, number>>, type: string): number {
  return formation[type] ?? (type === 'web' ? 1 : 0);
}

/** The one place a stop grace is decided: the release's app.json, else the daemon's, else 30 s. */
export function stopGraceMs(
  deps: Pick<ProcessDeps, 'stopGraceMs'>,
  release: Release | null,
): number {
  return release?.appJson.stopGraceSeconds !== undefined
    ? release.appJson.stopGraceSeconds * 1000
    : (deps.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
}

/**
 * Start new → check → switch → drain → stop old, for every process type of `release`.
 * `onSwitched` runs right after the route points at the new processes.
 */
export async function replaceProcesses(
  deps: DeployDeps,
  release: Release,
  r: Reporter,
  onSwitched: () => void = () => undefined,
  only?: string,
): Promise<void> {
  const { app, version } = release;
  const sup = deps.supervisor;
  const formation = deps.state.apps.formation(app);
  // `only`: ps:restart of one process type; the others keep running untouched.
  const old = sup.list(app).filter((p) => only === undefined || p.type === only);
  const fresh: ProcView[] = [];
  try {
    for (const type of processOrder(release).filter((t) => only === undefined || t === only)) {
      const count = wanted(formation, type);
      if (count === 0) {
        r.info(`${type}: scaled to 0`);
        continue;
      }
      if (type === 'web') r.info(await webPortLine(deps, release));
      await r.timed(
        `Starting ${count} ${type} process${count === 1 ? '' : 'es'} of v${version}…`,
        async () => {
          const results = await Promise.allSettled(
            Array.from({ length: count }, (_, i) =>
              sup.launch(release, type, i + 1, (l) => r.info(l)),
            ),
          );
          for (const x of results) if (x.status === 'fulfilled') fresh.push(x.value);
          const failed = results.find((x) => x.status === 'rejected');
          if (failed !== undefined) throw failed.reason;
          for (const p of results)
            if (p.status === 'fulfilled')
              r.info(
                `${type}.${p.value.n} is healthy${p.value.ip === null ? '' : ` on ${p.value.ip}${type === 'web' ? `:${p.value.port}` : ''}`}`,
              );
        },
      );
    }
  } catch (e) {
    await Promise.all(fresh.map((p) => sup.retire(p, 0)));
    throw new DeployFailed(
      `${describeError(e)}\nthe new processes were stopped; the old ones keep serving`,
      { step: 'check' },
    );
  }
  if (only === undefined && !processOrder(release).includes('web'))
    r.info('no web process type: the app receives no HTTP traffic');
  await r.timed('Switching route…', () => sup.setRotation({ into: fresh, outOf: old }));
  onSwitched();
  if (old.length > 0) {
    const grace = stopGraceMs(deps, release);
    await r.timed(
      `Stopping ${old.length} old process${old.length === 1 ? '' : 'es'}…`,
      async () => {
        await Promise.all(old.map((p) => sup.retire(p, grace)));
      },
    );
  }
}

/** app.json `scripts.dokku.predeploy`, then the Procfile's `release:`; each a one-off container. */
async function releasePhase(deps: DeployDeps, release: Release, r: Reporter): Promise<void> {
  const commands: { name: string; argv: readonly string[] }[] = [];
  if (release.appJson.predeploy !== undefined)
    commands.push({
      name: 'app.json predeploy',
      argv: ['/bin/sh', '-c', release.appJson.predeploy],
    });
  const rel = release.processes.release;
  if (rel !== undefined) commands.push({ name: 'Procfile release', argv: rel });
  if (commands.length === 0) {
    r.info('nothing to run');
    return;
  }
  for (const c of commands) {
    r.info(`$ ${c.name}`);
    const code = await runOneOff(deps, release, c.argv, 'release', (line) => r.build(line));
    if (code !== 0)
      throw new DeployFailed(`${c.name} failed with exit code ${code}; the deploy was aborted`, {
        step: 'release',
        exitCode: code,
      });
  }
}

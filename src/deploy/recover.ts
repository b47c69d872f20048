// Daemon start and app teardown. At start nothing the previous daemon was doing can still be
// running: its builds are marked failed, its locks freed, and a deploy it died in is rolled
// back (its release marked failed; the live pointer only moves once the route switched, so
// the live release is what serves). The containers, which outlived it, are adopted — the live
// release's running ones —, the route table is published from them, and only then are strays
// stopped (the router may still point at an interrupted deploy's processes until it drained
// them). Last, each app converges on its formation: gone processes are started again, with
// their slot's restart history.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AppName } from '../apps/index.ts';
import { removeRepo } from '../git/index.ts';
import { describeError } from '../errors/index.ts';
import { stopGraceMs } from './deploy.ts';
import { converge } from './formation.ts';
import { labelsOf, removeContainer } from './processes.ts';
import { publishRoutes } from './routes.ts';
import { Storage } from '../storage/index.ts';
import type { DeployDeps } from './types.ts';

export interface AdoptReport {
  failedBuilds: number;
  failedDeploys: number;
  freedLocks: string[];
  adopted: number;
  retired: number;
  restarted: number;
}

export async function adopt(deps: DeployDeps, log: (msg: string) => void): Promise<AdoptReport> {
  const { state } = deps;
  const report: AdoptReport = {
    failedBuilds: 0,
    failedDeploys: 0,
    freedLocks: state.locks.freeStale(),
    adopted: 0,
    retired: 0,
    restarted: 0,
  };
  for (const b of state.builds.failInterrupted()) {
    report.failedBuilds++;
    deps.logs.append(b.app, {
      source: 'system',
      text: `build ${b.id} of ${b.gitSha.slice(0, 7)} failed: the daemon stopped during the build`,
    });
  }
  report.failedDeploys = state.releases.failInterrupted();
  // Checkouts of interrupted pushes.
  const tmp = join(deps.dataDir, 'tmp');
  try {
    for (const d of readdirSync(tmp))
      if (d.startsWith('checkout-')) rmSync(join(tmp, d), { recursive: true, force: true });
  } catch {
    // No tmp dir yet.
  }
  // Containers whose create the previous daemon died in: never listed, so only a sweep frees
  // their network namespace, address and cgroup.
  report.retired += (await deps.runtime.sweep()).length;

  const apps = new Map(state.apps.list().map((a) => [a.name as string, a]));
  const strays: string[] = [];
  for (const c of await deps.runtime.list()) {
    if (c.labels['paas.build'] !== undefined) {
      // A build step of a build that died with the previous daemon: nobody waits for it.
      await deps.runtime.remove(c.id, { force: true }).catch(() => undefined);
      report.retired++;
      continue;
    }
    const l = labelsOf(c);
    if (l === null) continue;
    const app = apps.get(l.app);
    // With a scheduler no app process runs on our runtime: what is here is a one-off.
    const keep =
      deps.scheduler === undefined &&
      app !== undefined &&
      !app.stopped &&
      c.labels.oneoff !== '1' &&
      app.liveRelease !== null &&
      l.release === `v${app.liveRelease}` &&
      c.state === 'running' &&
      /^[1-9][0-9]{0,3}$/.test(l.n) &&
      !deps.supervisor.list(app.name).some((p) => p.type === l.type && p.n === Number(l.n));
    if (!keep) {
      strays.push(c.id);
      continue;
    }
    const release = state.releases.get(app.name, app.liveRelease!);
    if (release.processes[l.type] === undefined) {
      strays.push(c.id);
      continue;
    }
    deps.supervisor.adopt(c, l, release, l.type === 'web');
    report.adopted++;
  }
  await publishRoutes(deps);
  for (const id of strays) {
    await removeContainer(deps, id, stopGraceMs(deps, null));
    report.retired++;
  }
  // A scheduler keeps its formations running by itself, across our restarts.
  for (const app of deps.scheduler === undefined ? state.apps.list() : []) {
    const before = deps.supervisor.list(app.name).length;
    try {
      await converge(deps, app.name);
    } catch (e) {
      log(`could not start every process of ${app.name}: ${describeError(e)}`);
    }
    const started = deps.supervisor.list(app.name).length - before;
    if (started > 0) {
      report.restarted += started;
      deps.logs.append(app.name, {
        source: 'system',
        text: `started ${started} missing process${started === 1 ? '' : 'es'} at daemon start`,
      });
    }
  }
  // Every slot is filled now: history of containers no process runs in (retired while the
  // daemon was down, strays) must not pass to a later slot.
  state.slots.keepOnly(new Set(deps.supervisor.list().map((p) => p.id)));
  return report;
}

export async function destroyApp(
  deps: DeployDeps,
  app: AppName,
  reposDir: string,
  opts: { purgeStorage?: boolean } = {},
): Promise<void> {
  const unlock = await deps.state.locks.acquire(app, 'destroy');
  try {
    deps.state.apps.get(app);
    if (deps.scheduler !== undefined) await deps.scheduler.destroy(app);
    const procs = deps.supervisor.list(app);
    await deps.supervisor.setRotation({ outOf: procs });
    const grace = stopGraceMs(deps, null);
    await Promise.all(procs.map((p) => deps.supervisor.retire(p, grace)));
    // Anything else labelled with the app (a one-off, a container the supervisor never saw).
    for (const c of await deps.runtime.list())
      if (c.labels.app === app) await removeContainer(deps, c.id, 0);
    deps.state.apps.destroy(app);
    await publishRoutes(deps);
    // Its images are unreferenced from now on: drop its tags so images:gc frees them.
    for (const tag of await deps.store.tags(app).catch(() => [] as string[]))
      await deps.store.deleteManifest(app, tag).catch(() => undefined);
    removeRepo(reposDir, app);
    deps.logs.remove(app);
    // Named volumes outlive the app (Dokku keeps storage too) unless asked otherwise.
    if (opts.purgeStorage === true) new Storage(deps.state.db, deps.dataDir).purge(app);
  } finally {
    unlock();
  }
}

// Daemon start and app teardown. At start nothing the previous daemon was doing can still be
// running: its builds and deploys are marked failed, its locks freed, and the containers
// (which outlived it) are adopted — the live release's kept, strays retired — before the
// route table is rebuilt from what actually runs.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AppName } from '../apps/index.ts';
import { removeRepo } from '../git/index.ts';
import { appProcesses, labelsOf, retire, startProcess, waitUntilListening } from './processes.ts';
import { publishRoutes } from './routes.ts';
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
  const report: AdoptReport = { failedBuilds: 0, failedDeploys: 0, freedLocks: state.locks.freeStale(), adopted: 0, retired: 0, restarted: 0 };
  for (const b of state.builds.failInterrupted()) {
    report.failedBuilds++;
    deps.logs.append(b.app, { source: 'system', text: `build ${b.id} of ${b.gitSha.slice(0, 7)} failed: the daemon stopped during the build` });
  }
  report.failedDeploys = state.releases.failInterrupted();
  // Checkouts of interrupted pushes.
  const tmp = join(deps.dataDir, 'tmp');
  try {
    for (const d of readdirSync(tmp)) if (d.startsWith('checkout-')) rmSync(join(tmp, d), { recursive: true, force: true });
  } catch {
    // No tmp dir yet.
  }

  const liveWeb = new Map<string, number>();
  for (const c of await deps.runtime.list()) {
    if (c.labels['paas.build'] !== undefined) {
      // A build step of a build that died with the previous daemon: nobody waits for it.
      await deps.runtime.remove(c.id, { force: true }).catch(() => undefined);
      report.retired++;
      continue;
    }
    const l = labelsOf(c);
    if (l === null) continue;
    const app = state.apps.list().find((a) => a.name === l.app);
    const keep = app !== undefined && c.labels.oneoff !== '1' && app.liveRelease !== null && l.release === `v${app.liveRelease}` && c.state === 'running';
    if (!keep) {
      await retire(deps, c.id, 5000);
      report.retired++;
      continue;
    }
    deps.collector.watchContainer(c.id, l.app, `${l.type}.${l.n}`, c.logPath);
    report.adopted++;
    if (l.type === 'web') liveWeb.set(l.app, (liveWeb.get(l.app) ?? 0) + 1);
  }
  // A live release whose web process is gone (host reboot, crash while the daemon was down).
  for (const app of state.apps.list()) {
    if (app.liveRelease === null || liveWeb.has(app.name)) continue;
    const release = state.releases.get(app.name, app.liveRelease);
    if (release.processes.web === undefined) continue;
    try {
      const p = await startProcess(deps, release, 'web', 1);
      await waitUntilListening(deps, p, deps.startTimeoutMs ?? 30_000);
      report.restarted++;
      deps.logs.append(app.name, { source: 'system', text: `restarted web.1 of v${release.version} at daemon start` });
    } catch (e) {
      log(`could not restart ${app.name} v${release.version}: ${(e as Error).message}`);
    }
  }
  await publishRoutes(deps);
  return report;
}

export async function destroyApp(deps: DeployDeps, app: AppName, reposDir: string): Promise<void> {
  const unlock = await deps.state.locks.acquire(app, 'destroy');
  try {
    deps.state.apps.get(app);
    await deps.router.switch(app, []);
    for (const p of await appProcesses(deps, app)) await retire(deps, p.info.id, deps.stopGraceMs ?? 10_000);
    deps.state.apps.destroy(app);
    await publishRoutes(deps);
    removeRepo(reposDir, app);
    deps.logs.remove(app);
  } finally {
    unlock();
  }
}

// Step 4 of the pipeline: put a release live without taking the app down. Start the new
// web process → wait until it accepts on $PORT → switch the route (the router resolves once
// the old backends drained) → retire the old processes. Any failure before the switch
// retires the new process and leaves the old release serving.
import type { Release } from '../apps/index.ts';
import { DeployFailed } from '../errors/index.ts';
import { appProcesses, retire, runOneOff, startProcess, waitUntilListening, type StartedProcess } from './processes.ts';
import { describeError } from './build.ts';
import type { Reporter } from './report.ts';
import type { DeployDeps } from './types.ts';

export async function deployRelease(deps: DeployDeps, release: Release, r: Reporter): Promise<void> {
  const { app, version } = release;
  deps.state.releases.markDeploying(app, version);
  let started: StartedProcess | null = null;
  try {
    await r.timed('Running release phase…', () => releasePhase(deps, release, r));
    const before = await appProcesses(deps, app);
    if (release.processes.web !== undefined) {
      started = await r.timed(`Starting web.1 of v${version}…`, async () => {
        const p = await startProcess(deps, release, 'web', 1);
        await waitUntilListening(deps, p, deps.startTimeoutMs ?? 30_000);
        r.info(`web.1 accepts on ${p.info.ip ?? '?'}:${p.port}`);
        return p;
      });
      const ip = started.info.ip;
      if (ip === null) throw new DeployFailed('web.1 has no IP address', { step: 'route' });
      await r.timed('Switching route…', () => deps.router.switch(app, [{ host: ip, port: started!.port, id: `web.1@v${version}` }]));
    } else {
      r.info('no web process type: the app receives no HTTP traffic');
    }
    // The route no longer reaches the old processes; from here the new release is live.
    deps.state.releases.finishDeploy(app, version, { ok: true });
    const old = before.filter((p) => p.labels.release !== `v${version}`);
    if (old.length > 0) {
      await r.timed(`Stopping ${old.length} old process${old.length === 1 ? '' : 'es'}…`, async () => {
        await Promise.all(old.map((p) => retire(deps, p.info.id, deps.stopGraceMs ?? 10_000)));
      });
    }
  } catch (e) {
    if (started !== null) await retire(deps, started.info.id, 0);
    deps.state.releases.finishDeploy(app, version, { ok: false, error: describeError(e) });
    throw e;
  }
}

/** app.json `scripts.dokku.predeploy`, then the Procfile's `release:`; each a one-off container. */
async function releasePhase(deps: DeployDeps, release: Release, r: Reporter): Promise<void> {
  const commands: { name: string; argv: readonly string[] }[] = [];
  if (release.appJson.predeploy !== undefined) commands.push({ name: 'app.json predeploy', argv: ['/bin/sh', '-c', release.appJson.predeploy] });
  const rel = release.processes.release;
  if (rel !== undefined) commands.push({ name: 'Procfile release', argv: rel });
  if (commands.length === 0) {
    r.info('nothing to run');
    return;
  }
  for (const c of commands) {
    r.info(`$ ${c.name}`);
    const code = await runOneOff(deps, release, c.argv, 'release', (line) => r.build(line));
    if (code !== 0) throw new DeployFailed(`${c.name} failed with exit code ${code}; the deploy was aborted`, { step: 'release', exitCode: code });
  }
}

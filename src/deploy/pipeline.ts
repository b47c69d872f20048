// The story of a push, top to bottom (Dokku's receive → build → release → deploy), and of
// the other ways a release is made: a config change and a rollback. Each holds the app's
// lock for its whole run, so one app changes one step at a time.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AppStore,
  parseVersion,
  type AppName,
  type ConfigKey,
  type Release,
} from '../apps/index.ts';
import { Conflict, describeError, ReleaseNotFound } from '../errors/index.ts';
import { branchName, planPush, type ReceivedPush } from '../git/index.ts';
import type * as BuildSteps from './build.ts';
import { deployRelease } from './deploy.ts';
import { collectImages } from './gc.ts';
import { appUrl, Reporter } from './report.ts';
import type { DeployDeps, Output } from './types.ts';

// Receive and build (with the buildpacks and what they read) load at the first push, not
// with the daemon, which may idle for days without one (test/lazy-imports.test.ts).
const buildSteps = (): Promise<typeof BuildSteps> => import('./build.ts');

/** Handles one push (called by the pre-receive hook); the exit code is the hook's verdict. */
export async function handlePush(
  deps: DeployDeps,
  push: ReceivedPush,
  out: Output,
): Promise<number> {
  const r = new Reporter(push.app, out, deps.logs);
  const plan = planPush(push.refs);
  if (plan.kind === 'refuse') {
    r.error(plan.reason);
    return 1;
  }
  if (plan.kind === 'store') {
    for (const ref of plan.refs)
      r.info(`${branchName(ref.ref)} stored; only main or master deploys`);
    return 0;
  }
  const { ref } = plan;
  const t0 = performance.now();
  let unlock: (() => void) | null = null;
  let deployed = false;
  try {
    unlock = await deps.state.locks.acquire(push.app, `push of ${ref.newSha.slice(0, 7)}`, {
      signal: out.signal,
      onWait: (holder) => r.info(`waiting for the running ${holder} of ${push.app} to finish…`),
    });
    await assertRefUnchanged(push, ref.ref, ref.oldSha);
    r.step(`Deploying ${push.app} at ${ref.newSha.slice(0, 7)} (${branchName(ref.ref)})`);
    const { build, receive } = await buildSteps();
    const checkout = await r.timed('Receiving…', () => receive(deps, push, ref));
    try {
      const built = await r.timed('Building…', () => build(deps, checkout, r));
      if (out.signal?.aborted === true)
        throw new Conflict('the push was cancelled', { step: 'release' });
      const release = await r.timed('Releasing…', async () => {
        const rel = deps.state.releases.create(
          push.app,
          {
            image: built.imageRef,
            imageDigest: built.image.digest,
            processes: built.processes,
            gitSha: checkout.sha,
            buildId: built.buildId,
            buildpack: built.buildpack,
            description: `Deploy ${checkout.sha.slice(0, 7)}`,
            appJson: built.appJson,
          },
          deps.state.apps.config(push.app),
        );
        await deps.store.tag(push.app, `v${rel.version}`, built.image.digest);
        r.info(
          `v${rel.version}: image ${built.image.digest.slice(0, 19)}, processes ${Object.keys(rel.processes).join(', ')}`,
        );
        return rel;
      });
      await r.timed('Deploying…', () => deployRelease(deps, release, r));
      r.info(`done in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
      r.step(`Released v${release.version}: ${appUrl(push.app, deps.domain, deps.httpPort)}`);
      deployed = true;
      // Old releases' images go in the background; a failure is logged, never the push's.
      void collectImages(deps).catch((e: unknown) =>
        deps.logs.append(push.app, {
          source: 'system',
          text: `image GC after the deploy failed: ${describeError(e)}`,
        }),
      );
      return 0;
    } finally {
      checkout.dispose();
    }
  } catch (e) {
    const live = deps.state.apps.exists(push.app)
      ? deps.state.apps.get(push.app).liveRelease
      : null;
    r.error(`push failed: ${describeError(e)}`);
    r.error(
      live === null
        ? 'nothing was deployed'
        : `v${live} is still live: ${appUrl(push.app, deps.domain, deps.httpPort)}`,
    );
    return 1;
  } finally {
    // git moves the ref only after the hook says yes; the next push of this app must see it
    // moved, so the lock is held until it has (or git gave up on it).
    if (unlock !== null) {
      if (deployed) void waitForRef(push.gitDir, ref.ref, ref.newSha, 15_000).finally(unlock);
      else unlock();
    }
  }
}

async function waitForRef(
  gitDir: string,
  ref: string,
  sha: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await readRef(gitDir, ref)) === sha) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const run = promisify(execFile);

/** The ref's sha, read without blocking: this process also serves the API, registry and logs. */
async function readRef(gitDir: string, ref: string): Promise<string> {
  try {
    const { stdout } = await run('git', [
      '--git-dir',
      gitDir,
      'rev-parse',
      '--verify',
      '--quiet',
      ref,
    ]);
    return stdout.trim();
  } catch {
    return '0000000000000000000000000000000000000000';
  }
}

/**
 * git compares the ref against what the pusher saw when it advertised refs; a push that
 * waited for the lock behind another would deploy and then lose that race, so say it now.
 */
async function assertRefUnchanged(
  push: ReceivedPush,
  ref: string,
  expected: string,
): Promise<void> {
  const current = await readRef(push.gitDir, ref);
  if (current !== expected) {
    throw new Conflict(
      `${branchName(ref)} moved to ${current.slice(0, 7)} while this push waited; fetch, then push again`,
      { step: 'receive' },
    );
  }
}

export type ReleaseResult = { release: Release; url: string };

/** config:set / config:unset: a new release with the changed config, deployed. */
export async function changeConfig(
  deps: DeployDeps,
  app: AppName,
  set: ReadonlyMap<ConfigKey, string>,
  unset: readonly ConfigKey[],
  out: Output,
): Promise<ReleaseResult | null> {
  const unlock = await deps.state.locks.acquire(app, 'config change');
  try {
    const current = deps.state.apps.config(app);
    const next = AppStore.applyConfig(current, set, unset);
    const live = deps.state.apps.get(app).liveRelease;
    const base = deps.state.releases.latest(app);
    if (base === null || live === null) {
      // Nothing deployed yet: the config waits for the first push.
      deps.state.apps.replaceConfig(app, next);
      return null;
    }
    const keys = [...set.keys(), ...unset.map((k) => `-${k}`)].join(', ');
    return await releaseAndDeploy(
      deps,
      deps.state.releases.get(app, live),
      next,
      `Config change: ${keys}`,
      out,
    );
  } finally {
    unlock();
  }
}

/** rollback: a new release with an old release's image, processes and config. */
export async function rollback(
  deps: DeployDeps,
  app: AppName,
  target: string | undefined,
  out: Output,
): Promise<ReleaseResult> {
  const unlock = await deps.state.locks.acquire(app, 'rollback');
  try {
    const live = deps.state.apps.get(app).liveRelease;
    let to: Release;
    if (target !== undefined) {
      to = deps.state.releases.get(app, parseVersion(target));
    } else {
      const prev = deps.state.releases
        .list(app)
        .find((x) => live !== null && x.version < live && x.deploy?.status === 'succeeded');
      if (prev === undefined)
        throw new ReleaseNotFound(`app "${app}" has no earlier release to roll back to`, { app });
      to = prev;
    }
    return await releaseAndDeploy(deps, to, to.config, `Rollback to v${to.version}`, out);
  } finally {
    unlock();
  }
}

async function releaseAndDeploy(
  deps: DeployDeps,
  from: Release,
  config: Readonly<Record<string, string>>,
  description: string,
  out: Output,
): Promise<ReleaseResult> {
  const r = new Reporter(from.app, out, deps.logs);
  const release = deps.state.releases.create(
    from.app,
    {
      image: from.image,
      imageDigest: from.imageDigest,
      processes: from.processes,
      gitSha: from.gitSha,
      buildId: from.buildId,
      buildpack: from.buildpack,
      description,
      appJson: from.appJson,
    },
    config,
  );
  r.step(`${description}: v${release.version}`);
  await deployRelease(deps, release, r);
  const url = appUrl(from.app, deps.domain, deps.httpPort);
  r.step(`Released v${release.version}: ${url}`);
  return { release: deps.state.releases.get(from.app, release.version), url };
}

// Image GC with the platform's keep rules (issue 4): an app keeps the images of its live
// release and its last 10 releases, and whatever a container of it runs; older release tags
// (`<app>:vN`) and build tags (`<app>:build-N`) of releases no longer kept are dropped, then
// the store frees every blob, unpacked layer and manifest no tag, kept image or build-cache
// layer references. After a deploy it runs in the background with the store's grace period;
// `paas images:gc` runs it at once, holding every app's lock so no build is half-way.
import { BuildCache } from '../builder/index.ts';
import type { GcReport } from '../registry/index.ts';
import type { DeployDeps } from './types.ts';

export const KEEP_RELEASES = 10;

export interface ImageGcReport extends GcReport {
  untagged: string[];
}

export async function collectImages(
  deps: DeployDeps,
  opts: { dryRun?: boolean; graceMs?: number } = {},
): Promise<ImageGcReport> {
  const { state, store } = deps;
  const keep = new Set<string>();
  const untag: { repo: string; tag: string }[] = [];
  const running = new Set<string>();
  for (const c of await deps.runtime.list())
    if (typeof c.labels.app === 'string' && typeof c.labels.release === 'string')
      running.add(`${c.labels.app}@${c.labels.release}`);
  for (const app of state.apps.list()) {
    const tags = new Set(await store.tags(app.name).catch(() => [] as string[]));
    const releases = state.releases.list(app.name, 100_000);
    const kept = new Set(releases.slice(0, KEEP_RELEASES).map((r) => r.version));
    if (app.liveRelease !== null) kept.add(app.liveRelease);
    const keptBuilds = new Set<number>();
    const droppedBuilds = new Set<number>();
    for (const r of releases) {
      if (kept.has(r.version) || running.has(`${app.name}@v${r.version}`)) {
        keep.add(r.imageDigest);
        if (r.buildId !== null) keptBuilds.add(r.buildId);
      } else {
        if (tags.has(`v${r.version}`)) untag.push({ repo: app.name, tag: `v${r.version}` });
        if (r.buildId !== null) droppedBuilds.add(r.buildId);
      }
    }
    const builds = new Map(state.builds.list(app.name, 100_000).map((b) => [b.id, b]));
    for (const tag of tags) {
      const m = /^build-([0-9]+)$/.exec(tag);
      if (m === null) continue;
      const id = Number(m[1]);
      // A build that succeeded but has no release yet is a push about to release it: kept.
      const drop =
        !keptBuilds.has(id) && (droppedBuilds.has(id) || builds.get(id)?.status === 'failed');
      if (drop) untag.push({ repo: app.name, tag });
    }
  }
  const existing = untag;
  if (opts.dryRun !== true) {
    for (const u of existing) await store.deleteManifest(u.repo, u.tag).catch(() => undefined);
  }
  const keepBlobs = await new BuildCache(deps.dataDir).layerDigests();
  // A dry run reports what the real one frees, which first drops the tags above.
  const assumeUntagged = opts.dryRun === true ? existing.map((u) => `${u.repo}:${u.tag}`) : [];
  const report = await store.gc({
    keep,
    keepBlobs,
    dryRun: opts.dryRun === true,
    graceMs: opts.graceMs,
    assumeUntagged,
  });
  return { ...report, untagged: existing.map((u) => `${u.repo}:${u.tag}`) };
}

/** `paas images:gc`: with every app's lock held, so nothing is between build and release. */
export async function collectImagesNow(deps: DeployDeps, dryRun: boolean): Promise<ImageGcReport> {
  const unlocks: (() => void)[] = [];
  try {
    for (const a of deps.state.apps.list())
      unlocks.push(await deps.state.locks.acquire(a.name, 'images:gc', { timeoutMs: 5 * 60_000 }));
    return await collectImages(deps, { dryRun, graceMs: 0 });
  } finally {
    for (const u of unlocks) u();
  }
}

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
  const cache = new BuildCache(deps.dataDir);
  const users: Set<string>[] = [];
  for (const app of state.apps.list()) {
    const gone = new Set(untag.filter((u) => u.repo === app.name).map((u) => u.tag));
    const refs = [...(await store.tags(app.name).catch(() => [] as string[]))].filter(
      (t) => !gone.has(t),
    );
    for (const r of state.releases.list(app.name, 100_000))
      if (keep.has(r.imageDigest)) refs.push(r.imageDigest);
    for (const ref of new Set(refs)) {
      const layers = await layersOf(deps, app.name, ref);
      if (layers !== null) users.push(layers);
    }
  }
  const pulled = await pulledImages(deps, {
    users,
    bases: new Set(await cache.baseDigests()),
    graceMs: opts.graceMs ?? PULL_GRACE_MS,
  });
  for (const d of pulled.keep) keep.add(d);
  untag.push(...pulled.untag);
  const existing = untag;
  if (opts.dryRun !== true) {
    for (const u of existing) await store.deleteManifest(u.repo, u.tag).catch(() => undefined);
    for (const f of pulled.forget) await store.puller.forget(f);
  }
  const keepBlobs = await cache.layerDigests();
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

/** A pulled image younger than this is kept: a build may have just pulled it for its FROM. */
const PULL_GRACE_MS = 15 * 60 * 1000;

async function layersOf(deps: DeployDeps, repo: string, ref: string): Promise<Set<string> | null> {
  try {
    const m = await deps.store.getManifest(repo, ref);
    const doc = JSON.parse(m.bytes.toString('utf8')) as { layers?: { digest: string }[] };
    return new Set((doc.layers ?? []).map((l) => l.digest));
  } catch {
    return null;
  }
}

/**
 * Pulled images (FROM python:3.12-slim) are a cache of the registry: kept while a release's
 * image is built on them (it holds all their layers), a build-cache entry was built on them,
 * or they were pulled within the grace period; otherwise their tag is dropped (a later build
 * pulls again). Base images we build locally have no pull record and stay.
 */
async function pulledImages(
  deps: DeployDeps,
  o: { users: Set<string>[]; bases: Set<string>; graceMs: number },
): Promise<{ keep: string[]; untag: { repo: string; tag: string }[]; forget: string[] }> {
  const out = {
    keep: [] as string[],
    untag: [] as { repo: string; tag: string }[],
    forget: [] as string[],
  };
  const needed = new Map<string, boolean>();
  for (const rec of await deps.store.puller.records()) {
    let need = needed.get(rec.digest);
    if (need === undefined) {
      const layers = await layersOf(deps, rec.repository, rec.digest);
      need =
        layers !== null &&
        (o.bases.has(rec.digest) ||
          Date.now() - Date.parse(rec.pulledAt) < o.graceMs ||
          o.users.some((u) => [...layers].every((l) => u.has(l))));
      needed.set(rec.digest, need);
    }
    if (need) {
      out.keep.push(rec.digest);
      continue;
    }
    out.forget.push(rec.file);
    if (rec.tag === null) continue;
    // Only while the tag still names what this record pulled (a refresh may have moved it).
    const now = await deps.store
      .getManifest(rec.repository, rec.tag)
      .then((m) => m.digest as string)
      .catch(() => null);
    if (now === rec.digest) out.untag.push({ repo: rec.repository, tag: rec.tag });
  }
  return out;
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

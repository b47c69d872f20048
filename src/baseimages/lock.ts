// The pinned inputs of the base images (provision/base-images.lock.json): the Debian suite
// and package lists, the Node versions built at install, and npm, corepack and yarn per major.
import fs from 'node:fs';

export type Pin = { version: string; integrity: string };
export type Lock = {
  debian: { suite: string; include: string[]; full: string[] };
  node: Record<string, Pin>;
  npm: Record<string, Pin>;
  corepack: Record<string, Pin>;
  yarn: Pin;
  nodeAliases: Record<string, string[]>;
  /** Backing services (src/services): Debian's own server packages, and the tags they get. */
  services: Record<ServiceImage, { packages: string[]; tags: string[] }>;
};

export type ServiceImage = 'postgres' | 'redis';

export const LOCK_FILE = new URL('../../provision/base-images.lock.json', import.meta.url);

export const lock: Lock = JSON.parse(fs.readFileSync(LOCK_FILE, 'utf8')) as Lock;

/** The Node versions built at install (one per major), newest major first. */
export function pinnedNodeVersions(): string[] {
  return Object.values(lock.node)
    .map((p) => p.version)
    .sort((a, b) => Number(b.split('.')[0]) - Number(a.split('.')[0]));
}

/** The version `node:<major>` means here: the lock's pin for built majors, else null. */
export function pinnedVersion(major: number): string | null {
  return lock.node[String(major)]?.version ?? null;
}

/** npm shipped with a Node major: its own pin, else the nearest older major's, else the newest. */
export function npmFor(major: number): Pin {
  return pickByMajor(lock.npm, major);
}

export function corepackFor(major: number): Pin {
  return lock.corepack[String(major)] ?? (lock.corepack.default as Pin);
}

function pickByMajor(table: Record<string, Pin>, major: number): Pin {
  const majors = Object.keys(table)
    .map(Number)
    .sort((a, b) => a - b);
  const older = majors.filter((m) => m <= major);
  const m = older.length > 0 ? older[older.length - 1] : majors[0];
  return table[String(m)] as Pin;
}

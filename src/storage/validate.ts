// The one validator of `storage:mount APP SOURCE:/path` (STYLE.md §6). SOURCE is a named
// volume (kept in the data dir, one directory per app) or an absolute host path the operator
// chose; /path is where every process of the app sees it. Both end up in the runtime's spec
// (native/SPEC.md `mount` lines are tab-separated), so neither may hold control characters.
import { realpathSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { InvalidMount } from '../errors/index.ts';

export type VolumeName = string & { readonly __brand: 'VolumeName' };
/** An absolute, normalized path inside the container (resolved in-root by the runtime). */
export type ContainerPath = string & { readonly __brand: 'ContainerPath' };
/** An absolute host directory that passed checkHostPath (symlinks resolved). */
export type HostPath = string & { readonly __brand: 'HostPath' };

export type MountSource = { kind: 'volume'; name: VolumeName } | { kind: 'host'; path: HostPath };
export interface MountSpec {
  source: MountSource;
  target: ContainerPath;
}

// Docker's volume-name rule, lower-case only so a name is also a safe directory name.
const VOLUME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const MAX_PATH = 1024;
// The runtime mounts its own /proc, /sys and /dev; a volume over them would hide or replace
// what the container's isolation relies on (masked /proc paths, the fresh /dev).
const CONTAINER_RESERVED = ['/proc', '/sys', '/dev'];
/**
 * Host directories no app may bind, nor any directory above them: the system's programs,
 * configuration and kernel interfaces, and paas's own state (the default data dir, the
 * host-wide network leases, the image cache). The daemon's data dir is added per call.
 */
export const HOST_RESERVED: readonly string[] = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/run',
  '/var/lib/paas',
  '/var/lib/paas-net',
  '/var/cache/paas',
];

function refuse(message: string, details: Record<string, unknown>): never {
  throw new InvalidMount(message, details);
}

function plainPath(what: string, raw: string): string {
  if (raw.length > MAX_PATH) refuse(`${what} is longer than ${MAX_PATH} characters`, {});
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f:]/.test(raw))
    refuse(`${what} "${raw.slice(0, 80)}" contains a control character or ':'`, {
      path: raw.slice(0, 80),
    });
  if (!raw.startsWith('/')) refuse(`${what} "${raw}" must be an absolute path`, { path: raw });
  // `..`, `.`, `//` and a trailing slash: one spelling per path, so two mounts cannot hide
  // behind two spellings of one target.
  if (posix.normalize(raw) !== raw || (raw.length > 1 && raw.endsWith('/')))
    refuse(`${what} "${raw}" is not normalized (no '..', '.', '//' or trailing '/')`, {
      path: raw,
    });
  return raw;
}

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

export function parseVolumeName(raw: unknown): VolumeName {
  if (typeof raw !== 'string' || !VOLUME.test(raw))
    refuse(
      `volume name "${String(raw).slice(0, 80)}" is invalid: lowercase letters, digits, '_', '.', '-', at most 63, starting with a letter or digit`,
      { volume: String(raw).slice(0, 80) },
    );
  return raw as VolumeName;
}

export function parseContainerPath(raw: unknown): ContainerPath {
  if (typeof raw !== 'string' || raw === '') refuse('a container path is required', {});
  const p = plainPath('container path', raw);
  if (p === '/') refuse('a volume cannot be mounted over the container\'s "/"', { path: p });
  for (const r of CONTAINER_RESERVED)
    if (within(p, r))
      refuse(`container path "${p}" is inside ${r}, which the runtime mounts itself`, {
        path: p,
      });
  return p as ContainerPath;
}

/**
 * An operator's host directory, refused when it is `/`, a system directory, paas's state
 * (`dataDir`) or anything inside or above one of those. Symlinks are resolved first, so a
 * link `/srv/x -> /etc` is judged as /etc; the resolved path is what gets mounted.
 */
export function checkHostPath(raw: string, dataDir: string): HostPath {
  const given = plainPath('host path', raw);
  let real: string;
  try {
    real = realpathSync(given);
  } catch {
    refuse(`host path "${given}" does not exist`, { path: given });
  }
  if (!statSync(real).isDirectory())
    refuse(`host path "${given}" is not a directory`, { path: given });
  const reserved = [...HOST_RESERVED, realOrSelf(dataDir)];
  for (const r of reserved) {
    if (real === '/' || within(real, r) || within(r, real))
      refuse(
        `host path "${given}"${real === given ? '' : ` (${real})`} is refused: ${real === '/' ? 'the host root' : within(real, r) ? `inside ${r}` : `it contains ${r}`}, which no app may bind`,
        { path: given, reserved: real === '/' ? '/' : r },
      );
  }
  return real as HostPath;
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return posix.normalize(p);
  }
}

/** `VOLUME:/path` or `/host/dir:/path`, every part validated. */
export function parseMount(raw: unknown, dataDir: string): MountSpec {
  if (typeof raw !== 'string' || raw === '')
    refuse('a mount is required: VOLUME:/path/in/container or /host/dir:/path/in/container', {});
  const i = raw.lastIndexOf(':');
  if (i <= 0)
    refuse(`mount "${raw.slice(0, 80)}" must be VOLUME:/path or /host/dir:/path`, {
      mount: raw.slice(0, 80),
    });
  const src = raw.slice(0, i);
  const target = parseContainerPath(raw.slice(i + 1));
  const source: MountSource = src.startsWith('/')
    ? { kind: 'host', path: checkHostPath(src, dataDir) }
    : { kind: 'volume', name: parseVolumeName(src) };
  return { source, target };
}

/** storage:unmount's argument: `/path`, or the `SOURCE:/path` it was mounted with. */
export function parseUnmount(raw: unknown): { source: string | null; target: ContainerPath } {
  if (typeof raw !== 'string' || raw === '')
    refuse('storage:unmount needs the container path, or the SOURCE:/path mounted', {});
  const i = raw.lastIndexOf(':');
  return i < 0
    ? { source: null, target: parseContainerPath(raw) }
    : { source: raw.slice(0, i), target: parseContainerPath(raw.slice(i + 1)) };
}

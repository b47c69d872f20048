// Writing inside a root without following anything: every operation names one component
// relative to an open directory, as openat(2)/mkdirat(2)/unlinkat(2) do, and a directory is
// entered only with O_DIRECTORY|O_NOFOLLOW, so a symlink (planted by a pushed tree, an image
// or a build step) in any component is refused by the kernel rather than followed. Node has
// no *at() calls; `/proc/self/fd/<fd>/<name>` is the same thing: the kernel jumps to the
// open directory through the fd (not by re-walking its path) and looks up one name in it.
// These are single metadata syscalls, hence sync; file contents are copied asynchronously.
import fs, { type Stats } from 'node:fs';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fs.constants;

/** Create a new file, never an existing one and never through a symlink. */
export const O_CREATE_NEW = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const O_DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

function one(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/'))
    throw new Error(`"${name}" is not a single path component`);
  return name;
}

/**
 * The path that names `name` inside the open directory `dirfd`. A child process (getfattr,
 * setfattr) does not share our fds, so for one pass `pid` (our own): `/proc/<pid>/fd/...`.
 */
export function at(dirfd: number, name: string, pid: number | 'self' = 'self'): string {
  return `/proc/${pid}/fd/${dirfd}/${one(name)}`;
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Opens a trusted host directory (the root itself) as a directory fd. */
export function openDir(dir: string): number {
  return fs.openSync(dir, O_DIR);
}

/** Opens `name` in `dirfd` as a directory; ELOOP/ENOTDIR when it is a symlink or not a directory. */
export function openDirAt(dirfd: number, name: string): number {
  return fs.openSync(at(dirfd, name), O_DIR);
}

export function lstatAt(dirfd: number, name: string): Stats | null {
  try {
    return fs.lstatSync(at(dirfd, name));
  } catch (err) {
    if (code(err) === 'ENOENT') return null;
    throw err;
  }
}

export function mkdirAt(dirfd: number, name: string, mode = 0o755): void {
  fs.mkdirSync(at(dirfd, name), mode);
}

/** Creates a new file (O_CREAT|O_EXCL|O_NOFOLLOW) and returns its fd, open for writing. */
export function createFileAt(dirfd: number, name: string, mode = 0o600): number {
  return fs.openSync(at(dirfd, name), O_CREATE_NEW, mode);
}

/** Opens an existing regular file or directory without following a symlink (for fchown/fchmod). */
export function openNoFollowAt(dirfd: number, name: string): number {
  return fs.openSync(at(dirfd, name), O_RDONLY | O_NOFOLLOW);
}

export function symlinkAt(dirfd: number, name: string, target: string): void {
  fs.symlinkSync(target, at(dirfd, name));
}

/** Removes whatever `name` is (a directory with its contents); symlinks are removed, not followed. */
export function removeAt(dirfd: number, name: string): void {
  fs.rmSync(at(dirfd, name), { recursive: true, force: true });
}

export function unlinkAt(dirfd: number, name: string): void {
  fs.unlinkSync(at(dirfd, name));
}

export function rmdirAt(dirfd: number, name: string): void {
  fs.rmdirSync(at(dirfd, name));
}

export function close(fd: number): void {
  fs.closeSync(fd);
}

/**
 * Opens the directory `parts` below `rootfd`, each component entered with O_NOFOLLOW, and
 * returns a new fd (the caller closes it). A missing component is created by
 * `mkdir(parentfd, name, index)` when given (it must make a directory); otherwise a missing
 * component, a symlink or a non-directory gives null. With `mkdir`, a symlink or a
 * non-directory throws (ELOOP/ENOTDIR): the caller resolved `parts` to be directories, so
 * anything else means the tree is not what it resolved.
 */
export async function openPathAt(
  rootfd: number,
  parts: readonly string[],
  mkdir?: (parentfd: number, name: string, index: number) => Promise<void> | void,
): Promise<number | null> {
  let fd = fs.openSync(`/proc/self/fd/${rootfd}`, O_RDONLY | O_DIRECTORY);
  try {
    for (const [i, name] of parts.entries()) {
      let next: number;
      try {
        next = openDirAt(fd, name);
      } catch (err) {
        const c = code(err);
        if (mkdir !== undefined && c === 'ENOENT') {
          await mkdir(fd, name, i);
          next = openDirAt(fd, name);
        } else if (mkdir === undefined && (c === 'ENOENT' || c === 'ELOOP' || c === 'ENOTDIR')) {
          return null;
        } else {
          throw err;
        }
      }
      close(fd);
      fd = next;
    }
    const out = fd;
    fd = -1;
    return out;
  } finally {
    if (fd >= 0) close(fd);
  }
}

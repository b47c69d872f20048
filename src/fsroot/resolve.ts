// The one in-root path resolver. Every pushed or image path becomes a host path through it,
// with the semantics of openat2(2) RESOLVE_IN_ROOT: the path is walked component by
// component as if the root were `/`, so `..` at the root stays at the root and a symlink's
// absolute target starts again from the root; nothing is ever followed out of it. The
// `beneath` mode is RESOLVE_BENEATH: instead of clamping, an escape is refused (EXDEV).
//
// Unlike the syscall it also walks past a missing component, as `mkdir -p` would have made
// it: the missing part is kept as written, and a later `..` climbs back out of it and
// lookups start again. The result never holds `.`, `..` or a symlink component, so joining
// it onto the host directory of the root (or a layer) is safe.
import type { Stats } from 'node:fs';
import { InvalidPath } from '../errors/index.ts';

/** Linux's MAXSYMLINKS: more links than this in one lookup is ELOOP (path_resolution(7)). */
export const MAX_SYMLINKS = 40;

/** What the resolver asks of a root. `rel` is canonical: its parents are real directories. */
export interface Root {
  /** The entry at `rel` without following it, or null when it does not exist. */
  lstat(rel: string): Promise<Stats | null>;
  readlink(rel: string): Promise<string>;
}

/** The same questions answered synchronously (for callers that cannot await). */
export interface SyncRoot {
  lstat(rel: string): Stats | null;
  readlink(rel: string): string;
}

/** A question the walk asks of the root; the answer is sent back into the generator. */
type Ask = { op: 'lstat'; rel: string } | { op: 'readlink'; rel: string };
type Answer = Stats | null | string;

export type Resolution = {
  /** Canonical path inside the root: no `.`, `..`, empty or symlink components. */
  parts: string[];
  /** `parts` joined with '/' ('' for the root itself). */
  rel: string;
  /** The entry found (a symlink only when not following the last component); null if missing. */
  stat: Stats | null;
};

export type ResolveOptions = {
  /** Follow a symlink in the last component (default true; false is O_NOFOLLOW / lstat). */
  followLast?: boolean;
  /** RESOLVE_BENEATH: refuse (EXDEV) where in-root resolution would clamp. */
  beneath?: boolean;
};

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function refuse(
  reason: 'ELOOP' | 'ENOTDIR' | 'EXDEV',
  path: string,
  why: string,
  via: string | null = null,
): never {
  throw new InvalidPath(`${path}: ${why}`, { path, reason, ...(via === null ? {} : { via }) });
}

/** Resolves `path` (absolute or relative: both start at the root) inside `root`. */
export async function resolveInRoot(
  root: Root,
  path: string,
  opts: ResolveOptions = {},
): Promise<Resolution> {
  const walk = resolution(path, opts);
  let step = walk.next();
  while (step.done !== true) {
    const q = step.value;
    step = walk.next(q.op === 'lstat' ? await root.lstat(q.rel) : await root.readlink(q.rel));
  }
  return step.value;
}

/** resolveInRoot over a synchronous root: the same walk. */
export function resolveInRootSync(
  root: SyncRoot,
  path: string,
  opts: ResolveOptions = {},
): Resolution {
  const walk = resolution(path, opts);
  let step = walk.next();
  while (step.done !== true) {
    const q = step.value;
    step = walk.next(q.op === 'lstat' ? root.lstat(q.rel) : root.readlink(q.rel));
  }
  return step.value;
}

/**
 * The walk itself, written once for both drivers: it yields each lookup it needs and is
 * sent the answer.
 */
function* resolution(path: string, opts: ResolveOptions): Generator<Ask, Resolution, Answer> {
  const followLast = opts.followLast ?? true;
  // Components still to walk, last first (so the next one is pop()).
  const todo = components(path).reverse();
  const done: string[] = [];
  // done[missingAt] and everything below it does not exist (Infinity: all of done exists).
  let missingAt = Infinity;
  // The stat of done's last component when known; undefined after a `..`.
  let stat: Stats | null | undefined;
  let links = 0;
  // The last symlink followed, `"rel" -> "target"`: an escape names it.
  let via: string | null = null;
  while (todo.length > 0) {
    const c = todo.pop() as string;
    if (c === '..') {
      if (done.length === 0) {
        if (opts.beneath === true)
          refuse(
            'EXDEV',
            path,
            `${via ? `symlink ${via}` : 'the path'} leads outside the root`,
            via,
          );
      } else {
        done.pop();
        if (done.length <= missingAt) missingAt = Infinity;
      }
      stat = undefined;
      continue;
    }
    done.push(c);
    if (done.length - 1 > missingAt) {
      stat = null;
      continue;
    }
    const rel = done.join('/');
    const st = (yield { op: 'lstat', rel }) as Stats | null;
    if (st === null) {
      missingAt = done.length - 1;
      stat = null;
      continue;
    }
    if (st.isSymbolicLink() && (todo.length > 0 || followLast)) {
      if (++links > MAX_SYMLINKS)
        refuse('ELOOP', path, `more than ${MAX_SYMLINKS} symlinks (a loop?)`);
      const target = (yield { op: 'readlink', rel }) as string;
      via = `"${rel}" -> "${target}"`;
      done.pop();
      if (target.startsWith('/')) {
        if (opts.beneath === true)
          refuse('EXDEV', path, `symlink ${via} leads outside the root (absolute target)`, via);
        done.length = 0;
        missingAt = Infinity;
      }
      todo.push(...components(target).reverse());
      stat = undefined;
      continue;
    }
    if (!st.isDirectory() && todo.length > 0)
      refuse('ENOTDIR', path, `"${rel}" is not a directory`);
    stat = st;
  }
  const rel = done.join('/');
  if (stat === undefined)
    stat = missingAt === Infinity ? ((yield { op: 'lstat', rel }) as Stats | null) : null;
  return { parts: done, rel, stat };
}

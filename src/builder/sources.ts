// COPY/ADD sources: which files a source list names (paths, Go filepath.Match globs,
// directories), resolved without ever leaving the tree they come from, and the content
// hash that keys the layer cache (paths, modes and file contents — never mtimes).
import { createHash } from 'node:crypto';
import fs, { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { InvalidDockerfile, InvalidPath } from '../errors/index.ts';
import { hostRoot, resolveInRoot } from '../fsroot/index.ts';
import type { SourceTree } from './context.ts';

export type EntryKind = 'file' | 'dir' | 'symlink';

export type Entry = {
  /** Path inside the tree (canonical: no symlink components). */
  rel: string;
  kind: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  link?: string;
};

/** One named source after resolution: what to copy, and how it was named (for dest naming). */
export type Source = {
  /** The source as written (after substitution). */
  spec: string;
  top: Entry;
  /** A directory's contents, recursively, with `rel` relative to the directory. */
  children: Entry[];
};

function fail(line: number, why: string): never {
  throw new InvalidDockerfile(`Dockerfile line ${line}: ${why}`, { line });
}

function kindOf(st: Stats, abs: string, line: number): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return fail(
    line,
    `${abs} is a special file (device, socket or fifo); only files, directories and symlinks can be copied`,
  );
}

function toEntry(rel: string, st: Stats, abs: string, line: number): Entry {
  const kind = kindOf(st, abs, line);
  const e: Entry = {
    rel,
    kind,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: kind === 'file' ? st.size : 0,
  };
  if (kind === 'symlink') e.link = fs.readlinkSync(abs);
  return e;
}

/**
 * Resolves `rel` inside `tree` with the in-root resolver: in a stage root as in a chroot
 * (absolute targets and `..` stay inside), in the build context beneath it (a link out of
 * the context is refused, never followed). Returns the canonical relative path, or null
 * when a component does not exist or is not a directory.
 */
export async function resolveIn(
  tree: SourceTree,
  rel: string,
  line: number,
  followLast = true,
): Promise<string | null> {
  const beneath = tree.symlinks === 'refuse-escape';
  try {
    const r = await resolveInRoot(hostRoot(tree.root), rel, { beneath, followLast });
    return r.stat === null ? null : r.rel;
  } catch (err) {
    if (!(err instanceof InvalidPath)) throw err;
    const { reason, via } = err.details as { reason: string; via?: string };
    if (reason === 'ENOTDIR') return null;
    if (reason === 'ELOOP')
      fail(line, `too many levels of symlinks resolving "${rel}" in the ${tree.label}`);
    fail(
      line,
      `${via === undefined ? `"${rel}"` : `symlink ${via}`} leads outside the build context; only files inside the context can be copied`,
    );
  }
}

/** A source path as written → path inside the tree; `..` climbing above the root is refused. */
export function cleanSource(spec: string, tree: SourceTree, line: number): string {
  const parts: string[] = [];
  for (const c of spec.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0)
        fail(line, `COPY source "${spec}" is outside the ${tree.label}; sources must be inside it`);
      parts.pop();
    } else {
      parts.push(c);
    }
  }
  return parts.join('/');
}

const MAGIC = /(^|[^\\])[*?[]/;

/** Go's filepath.Match for a whole relative path: `*` and `?` never match '/'. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '\\' && i + 1 < pattern.length)
      re += `\\${pattern[++i]}`.replace(/^\\([A-Za-z0-9])$/, '$1');
    else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function listDir(tree: SourceTree, dirRel: string, line: number): Promise<Entry[]> {
  const out: Entry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '' ? path.join(tree.root, dirRel) : path.join(tree.root, dirRel, rel);
    const names = (await fsp.readdir(abs)).sort();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const full = dirRel === '' ? r : `${dirRel}/${r}`;
      const a = path.join(abs, name);
      const st = await fsp.lstat(a);
      const inc = tree.included(full);
      if (inc) out.push(toEntry(r, st, a, line));
      if (st.isDirectory() && (inc || tree.descendExcluded === true)) await walk(r);
    }
  };
  await walk('');
  return out;
}

/** Every path in `tree` matching a glob pattern, shallowest-first, sorted. */
async function glob(tree: SourceTree, pattern: string): Promise<string[]> {
  const re = globToRegExp(pattern);
  const depth = pattern.split('/').length;
  const out: string[] = [];
  const walk = async (rel: string, d: number): Promise<void> => {
    const abs = rel === '' ? tree.root : path.join(tree.root, rel);
    const names = await fsp.readdir(abs).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (re.test(r) && tree.included(r)) out.push(r);
      if (d < depth && (await fsp.lstat(path.join(abs, name))).isDirectory()) await walk(r, d + 1);
    }
  };
  await walk('', 1);
  return out;
}

/** Resolves each source spec to entries; a source that matches nothing fails naming it. */
export async function collectSources(
  tree: SourceTree,
  specs: string[],
  line: number,
): Promise<Source[]> {
  const out: Source[] = [];
  for (const spec of specs) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec))
      fail(
        line,
        `remote sources ("${spec}") are not supported; download them with RUN (curl/wget) instead`,
      );
    const clean = cleanSource(spec, tree, line);
    const names = MAGIC.test(clean) ? await glob(tree, clean) : [clean];
    if (names.length === 0)
      fail(line, `no source files were specified: "${spec}" matches nothing in the ${tree.label}`);
    for (const name of names) {
      const real = await resolveIn(tree, name, line);
      if (real === null || !tree.included(real) || (real !== name && !tree.included(name))) {
        fail(
          line,
          `"${spec}" not found in the ${tree.label}${tree.symlinks === 'refuse-escape' ? ' (or excluded by .dockerignore)' : ''}`,
        );
      }
      const abs = real === '' ? tree.root : path.join(tree.root, real);
      const top = toEntry(real, await fsp.lstat(abs), abs, line);
      out.push({
        spec: name,
        top,
        children: top.kind === 'dir' ? await listDir(tree, real, line) : [],
      });
    }
  }
  return out;
}

/**
 * A file's content hash, remembered in `memo` by path + identity + mtime/ctime: the memo only
 * skips re-reading a file whose inode data is unchanged; the cache key is always the content.
 * The memo belongs to one build (each push is checked out to a new directory, so a memo kept
 * across builds would never hit and only grow).
 */
async function contentHash(abs: string, memo: Map<string, string>): Promise<string> {
  const st = await fsp.lstat(abs);
  const id = `${abs}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const hit = memo.get(id);
  if (hit !== undefined) return hit;
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(abs)) h.update(chunk as Buffer);
  const digest = h.digest('hex');
  memo.set(id, digest);
  return digest;
}

/** Content digest of resolved sources: names, kinds, modes, link targets and file contents. */
export async function hashSources(
  tree: SourceTree,
  sources: Source[],
  memo: Map<string, string>,
): Promise<string> {
  const h = createHash('sha256');
  const add = async (abs: string, e: Entry, name: string): Promise<void> => {
    const body = e.kind === 'file' ? await contentHash(abs, memo) : (e.link ?? '');
    h.update(`${e.kind} ${JSON.stringify(name)} ${e.mode.toString(8)} ${body}\n`);
  };
  for (const s of sources) {
    const top = path.join(tree.root, s.top.rel);
    await add(top, s.top, s.spec);
    for (const c of s.children) await add(path.join(top, c.rel), c, `${s.spec}/${c.rel}`);
  }
  return h.digest('hex');
}

// Resolves an image USER (`name`, `uid`, `name:group`, `uid:gid`) to numeric ids by reading
// the image's /etc/passwd and /etc/group, as Docker does. The files come from untrusted
// images, so they are looked up with every symlink resolved *inside* the root (a link to
// `/etc/shadow` or `../../` can never reach a host file).
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidSpec } from '../errors/index.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
}

const MAX_LINKS = 40;

/**
 * Joins `rel` onto `root`, following symlinks as if `root` were `/`, so the result always
 * lies inside root. Returns null when a component is missing.
 */
export function secureJoin(root: string, rel: string): string | null {
  const todo = rel.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const candidate = join(root, ...done, c);
    let st;
    try {
      st = lstatSync(candidate);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return null;
      const target = readlinkSync(candidate);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    done.push(c);
  }
  return join(root, ...done);
}

/** Reads a file from the topmost layer that has it; a whiteout there means the image deleted it. */
function readFromLayers(layers: readonly string[], rel: string): string | null {
  for (const layer of layers) {
    const p = secureJoin(layer, rel);
    if (p === null) continue;
    try {
      const st = lstatSync(p);
      // OCI layer.md / overlayfs: a 0:0 character device hides the file in every lower layer.
      if (st.isCharacterDevice() && st.rdev === 0) return null;
      if (!st.isFile()) continue;
      return readFileSync(p, 'utf8');
    } catch {
      continue;
    }
  }
  return null;
}

interface Entry {
  name: string;
  id: number;
  gid: number;
  home: string;
  members: string[];
}

function parseDb(text: string | null, kind: 'passwd' | 'group'): Entry[] {
  if (text === null) return [];
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] === undefined || !Number.isSafeInteger(id) || id < 0) continue;
    if (kind === 'passwd')
      out.push({ name: f[0], id, gid: Number(f[3]) || 0, home: f[5] ?? '/', members: [] });
    else
      out.push({
        name: f[0],
        id,
        gid: id,
        home: '',
        members: (f[3] ?? '').split(',').filter((m) => m !== ''),
      });
  }
  return out;
}

function isNumeric(s: string): boolean {
  return /^\d+$/.test(s);
}

export function resolveUser(layers: readonly string[], user: string): ResolvedUser {
  const [u, g] = user.split(':') as [string, string | undefined];
  const passwd = parseDb(readFromLayers(layers, 'etc/passwd'), 'passwd');
  const groupDb = parseDb(readFromLayers(layers, 'etc/group'), 'group');

  let uid: number;
  let gid: number;
  let home = '/';
  let name: string | null = null;
  const pw = isNumeric(u)
    ? passwd.find((e) => e.id === Number(u))
    : passwd.find((e) => e.name === u);
  if (pw !== undefined) {
    uid = pw.id;
    gid = pw.gid;
    home = pw.home;
    name = pw.name;
  } else if (isNumeric(u)) {
    uid = Number(u);
    gid = 0;
  } else {
    throw new InvalidSpec(`user: "${u}" is not in the image's /etc/passwd`, { field: 'user' });
  }
  if (g !== undefined) {
    const gr = isNumeric(g)
      ? groupDb.find((e) => e.id === Number(g))
      : groupDb.find((e) => e.name === g);
    if (gr !== undefined) gid = gr.id;
    else if (isNumeric(g)) gid = Number(g);
    else
      throw new InvalidSpec(`user: group "${g}" is not in the image's /etc/group`, {
        field: 'user',
      });
  }
  if (uid > 0xfffffffe || gid > 0xfffffffe)
    throw new InvalidSpec('user: id out of range', { field: 'user' });
  const groups =
    name === null
      ? []
      : groupDb.filter((e) => e.members.includes(name) && e.id !== gid).map((e) => e.id);
  return { uid, gid, groups, home };
}

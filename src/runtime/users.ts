// Resolves an image USER (`name`, `uid`, `name:group`, `uid:gid`) to numeric ids by reading
// the image's /etc/passwd and /etc/group, as Docker does. The files come from untrusted
// images, so they are found by the in-root resolver over the image's merged layers (a link
// to `/etc/shadow` or `../../` resolves inside the image and never reaches a host file; a
// whiteout in a higher layer means the image deleted the file).
import { InvalidPath, InvalidSpec } from '../errors/index.ts';
import { LayerStack, resolveInRoot } from '../fsroot/index.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
}

/** A regular file of the image (layers topmost first), or null. */
async function readImageFile(layers: readonly string[], rel: string): Promise<string | null> {
  const image = new LayerStack([...layers]);
  try {
    const r = await resolveInRoot(image, rel);
    return r.stat?.isFile() === true ? await image.readFile(r.rel) : null;
  } catch (err) {
    if (err instanceof InvalidPath) return null;
    throw err;
  }
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

export async function resolveUser(layers: readonly string[], user: string): Promise<ResolvedUser> {
  const [u, g] = user.split(':') as [string, string | undefined];
  const passwd = parseDb(await readImageFile(layers, 'etc/passwd'), 'passwd');
  const groupDb = parseDb(await readImageFile(layers, 'etc/group'), 'group');

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

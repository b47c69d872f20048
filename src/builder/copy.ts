// COPY and ADD: a layer built directly, without a container. Matched sources are written
// into a fresh directory at their destination paths with the right owner and mode; the
// destination is resolved against the stage's merged view as Docker does (symlinked parents
// such as Debian's /bin -> usr/bin are followed, inside the image only), and parents that
// already exist keep the image's owner and mode. ADD unpacks local tar archives.
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { BuildFailed, InvalidDockerfile } from '../errors/index.ts';
import type { SourceTree } from './context.ts';
import type { Entry, Source } from './sources.ts';
import { archiveBytes, type DiskBudget } from './limits.ts';
import type { Lookup } from './stack.ts';

export type CopyPlan = {
  tree: SourceTree;
  sources: Source[];
  /** Absolute destination in the image, as written (a trailing '/' means a directory). */
  dest: string;
  chown: string | null;
  chmod: number | null;
  add: boolean;
  line: number;
  /** The build's disk budget: ADD may unpack an archive into what is left of it. */
  disk?: DiskBudget;
};

type Owner = { uid: number; gid: number };

function fail(line: number, why: string): never {
  throw new InvalidDockerfile(`Dockerfile line ${line}: ${why}`, { line });
}

/**
 * Resolves an image path against the view: existing components are followed through
 * symlinks as in a chroot; the missing tail is kept literally (COPY creates it).
 */
async function resolveDest(view: Lookup, abs: string): Promise<string[]> {
  const todo = abs.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const st = await view.lstat([...done, c].join('/'));
    if (st !== null && st.isSymbolicLink() && links++ < 40) {
      const target = await view.readlink([...done, c].join('/'));
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    done.push(c);
    if (st === null || !st.isDirectory()) {
      // Past a missing (or non-directory) component nothing more exists to follow.
      done.push(...todo.filter((x) => x !== '' && x !== '.'));
      break;
    }
  }
  return done;
}

function lookupId(file: string, name: string): number | null {
  for (const line of file.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  return null;
}

/** `--chown=user[:group]` by name (from the image's /etc/passwd and /etc/group) or number. */
export async function resolveOwner(spec: string, view: Lookup, line: number): Promise<Owner> {
  const [u = '', g] = spec.split(':');
  const read = async (rel: string): Promise<string> =>
    (await view.readFile((await resolveDest(view, rel)).join('/'))) ?? '';
  const uid = /^\d+$/.test(u) ? Number(u) : lookupId(await read('/etc/passwd'), u);
  if (uid === null) fail(line, `--chown: no user "${u}" in the image's /etc/passwd`);
  // Docker: a user without a group gets the same number as gid.
  const gid =
    g === undefined || g === ''
      ? uid
      : /^\d+$/.test(g)
        ? Number(g)
        : lookupId(await read('/etc/group'), g);
  if (gid === null) fail(line, `--chown: no group "${g}" in the image's /etc/group`);
  return { uid, gid };
}

export function parseChmod(raw: string, line: number): number {
  if (!/^[0-7]{3,4}$/.test(raw))
    fail(line, `--chmod=${raw}: use octal permissions such as 755 or 0644`);
  return parseInt(raw, 8);
}

type ArchiveKind = 'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd' | null;

async function archiveKind(file: string): Promise<ArchiveKind> {
  const fh = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    const b = buf.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
    if (bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return null;
  } finally {
    await fh.close();
  }
}

class LayerWriter {
  private readonly layer: string;
  private readonly view: Lookup;
  private readonly owner: Owner;
  private readonly made = new Set<string>();

  constructor(layer: string, view: Lookup, owner: Owner) {
    this.layer = layer;
    this.view = view;
    this.owner = owner;
  }

  /** Creates the parents of `parts` in the layer: the image's owner and mode where they exist. */
  async parents(parts: string[], upto = parts.length - 1): Promise<void> {
    for (let i = 1; i <= upto; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.made.has(rel)) continue;
      const abs = path.join(this.layer, rel);
      const had = await fsp.lstat(abs).catch(() => null);
      if (had !== null && !had.isDirectory()) await fsp.rm(abs, { recursive: true });
      if (had === null || !had.isDirectory()) {
        await fsp.mkdir(abs);
        const img = await this.view.lstat(rel);
        if (img !== null && img.isDirectory()) {
          await fsp.chown(abs, img.uid, img.gid);
          await fsp.chmod(abs, img.mode & 0o7777);
        } else {
          await fsp.chown(abs, this.owner.uid, this.owner.gid);
          await fsp.chmod(abs, 0o755);
        }
      }
      this.made.add(rel);
    }
  }

  async put(parts: string[], e: Entry, src: string, chmod: number | null): Promise<void> {
    await this.parents(parts);
    const abs = path.join(this.layer, ...parts);
    const had = await fsp.lstat(abs).catch(() => null);
    if (had !== null && !(had.isDirectory() && e.kind === 'dir'))
      await fsp.rm(abs, { recursive: true });
    const { uid, gid } = this.owner;
    switch (e.kind) {
      case 'file':
        await fsp.copyFile(src, abs, constants.COPYFILE_FICLONE);
        await fsp.chown(abs, uid, gid);
        await fsp.chmod(abs, chmod ?? e.mode);
        break;
      case 'dir':
        if (had === null || !had.isDirectory()) await fsp.mkdir(abs);
        await fsp.chown(abs, uid, gid);
        await fsp.chmod(abs, chmod ?? e.mode);
        this.made.add(parts.join('/'));
        break;
      case 'symlink':
        await fsp.symlink(e.link ?? '', abs);
        await fsp.lchown(abs, uid, gid);
        break;
    }
  }

  /** ADD of a local archive: unpacked into the destination directory. */
  async extract(parts: string[], file: string, keepOwners: boolean): Promise<void> {
    await this.parents(parts, parts.length);
    await tar.x({
      file,
      cwd: path.join(this.layer, ...parts),
      preserveOwner: keepOwners,
      // node-tar refuses `..` and absolute entries and never writes through a symlink.
      strict: true,
      ...(keepOwners ? {} : { uid: this.owner.uid, gid: this.owner.gid }),
    });
  }
}

/** Writes the plan's files into `layer` (an empty directory); `view` is the stage's filesystem. */
export async function writeCopyLayer(plan: CopyPlan, layer: string, view: Lookup): Promise<void> {
  const { line } = plan;
  const owner =
    plan.chown === null ? { uid: 0, gid: 0 } : await resolveOwner(plan.chown, view, line);
  const w = new LayerWriter(layer, view, owner);
  const many = plan.sources.length > 1;
  const destParts = await resolveDest(view, plan.dest);
  const destIsDir =
    plan.dest.endsWith('/') ||
    plan.dest.endsWith('/.') ||
    (await view.lstat(destParts.join('/')))?.isDirectory() === true;
  if (many && !destIsDir)
    fail(
      line,
      `with more than one source file the destination must be a directory and end with a / (got "${plan.dest}")`,
    );
  for (const s of plan.sources) {
    const src = path.join(plan.tree.root, s.top.rel);
    if (s.top.kind === 'dir') {
      await w.parents(destParts, destParts.length);
      for (const c of s.children)
        await w.put([...destParts, ...c.rel.split('/')], c, path.join(src, c.rel), plan.chmod);
      continue;
    }
    if (plan.add && s.top.kind === 'file') {
      const kind = await archiveKind(src);
      if (kind === 'bzip2' || kind === 'xz' || kind === 'zstd')
        fail(line, `ADD ${s.spec}: ${kind} archives are not supported (use tar or tar.gz)`);
      if (kind !== null) {
        // Measured before anything is written: a gzip bomb stops at the cap, not the disk.
        const cap = plan.disk?.remaining() ?? Number.POSITIVE_INFINITY;
        if ((await archiveBytes(src, cap)) > cap)
          throw plan.disk!.exceeded(`ADD ${s.spec}: the unpacked archive`, cap);
        await w.extract(destParts, src, plan.chown === null).catch((err: unknown) => {
          const why = err instanceof Error ? err.message : String(err);
          throw new BuildFailed(
            `Dockerfile line ${line}: ADD ${s.spec}: archive refused: ${why}`,
            { line, source: s.spec },
            { cause: err },
          );
        });
        continue;
      }
    }
    const name = path.posix.basename(s.spec || s.top.rel);
    await w.put(destIsDir ? [...destParts, name] : destParts, s.top, src, plan.chmod);
  }
}

/** WORKDIR of a directory the image lacks: a layer with it (root-owned, 0755). False when it exists. */
export async function writeDirLayer(abs: string, layer: string, view: Lookup): Promise<boolean> {
  const parts = await resolveDest(view, abs);
  const st = await view.lstat(parts.join('/'));
  if (st !== null && st.isDirectory()) return false;
  await new LayerWriter(layer, view, { uid: 0, gid: 0 }).parents(parts, parts.length);
  return true;
}

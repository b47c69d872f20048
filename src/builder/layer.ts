// The layer writer of COPY, ADD and WORKDIR: a layer built directly, without a container.
// Matched sources are written into a fresh directory at their destination paths with the
// right owner and mode. Every destination is resolved by the in-root resolver (src/fsroot)
// against the stage's merged view with the layer being written on top, as Docker does:
// symlinked parents such as Debian's /bin -> usr/bin are followed, inside the image only,
// including symlinks an earlier source of the same COPY put there. The layer is then
// written through directory fds with O_NOFOLLOW, so nothing in it is ever followed on the
// host. Parents that already exist keep the image's owner and mode. ADD unpacks local tar
// archives.
import fs, { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { BuildFailed, InvalidDockerfile, InvalidPath } from '../errors/index.ts';
import {
  at,
  close,
  LayerStack,
  lstatAt,
  mkdirAt,
  openDir,
  openDirAt,
  openNoFollowAt,
  openPathAt,
  removeAt,
  resolveInRoot,
  symlinkAt,
  type Lookup,
  type Resolution,
} from '../fsroot/index.ts';
import type { SourceTree } from './context.ts';
import type { Entry, Source } from './sources.ts';
import { archiveBytes, type DiskBudget } from './limits.ts';

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

/** Resolves an image path in `view` (in-root); a path that cannot be resolved fails the line. */
async function resolveDest(view: Lookup, abs: string, line: number): Promise<Resolution> {
  try {
    return await resolveInRoot(view, abs);
  } catch (err) {
    if (err instanceof InvalidPath) fail(line, err.message);
    throw err;
  }
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
    (await view.readFile((await resolveDest(view, rel, line)).rel)) ?? '';
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

/** Sets owner and mode through `fd` (chown first: it clears set-id bits), then closes it. */
function setOwnerMode(fd: number, owner: Owner, mode: number): void {
  try {
    fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fchmodSync(fd, mode);
  } finally {
    close(fd);
  }
}

class LayerWriter {
  private readonly layer: string;
  private readonly root: number;
  private readonly image: Lookup;
  /** The image with the layer being written on top: what destinations resolve against. */
  private readonly merged: LayerStack;
  private readonly owner: Owner;
  private readonly line: number;
  /**
   * Resolved parent directories by the path they were asked as. Only a new symlink or a
   * removal can change a resolution, and both clear it; even a stale entry could not leave
   * the layer, since every write goes through O_NOFOLLOW directory fds.
   */
  private readonly parentsMemo = new Map<string, string[]>();

  constructor(layer: string, imageDirs: string[], owner: Owner, line: number) {
    this.layer = layer;
    this.root = openDir(layer);
    this.image = new LayerStack(imageDirs);
    this.merged = new LayerStack([layer, ...imageDirs]);
    this.owner = owner;
    this.line = line;
  }

  close(): void {
    close(this.root);
  }

  /** The canonical path of the directory asked as `parts`, resolved in the merged view. */
  async resolveDir(parts: string[]): Promise<string[]> {
    const key = parts.join('/');
    const hit = this.parentsMemo.get(key);
    if (hit !== undefined) return hit;
    const r = await resolveDest(this.merged, key, this.line);
    if (r.stat !== null && !r.stat.isDirectory()) fail(this.line, `"/${r.rel}" is not a directory`);
    this.parentsMemo.set(key, r.parts);
    return r.parts;
  }

  /**
   * Opens the layer directory at canonical `parts`, creating what is missing: with the
   * image's owner and mode where the image has that directory, else the COPY's owner, 0755.
   */
  async dir(parts: string[]): Promise<number> {
    const fd = await openPathAt(this.root, parts, async (parent, name, i) => {
      const img = await this.image.lstat(parts.slice(0, i + 1).join('/'));
      mkdirAt(parent, name, 0o700);
      const keep = img !== null && img.isDirectory();
      setOwnerMode(
        openDirAt(parent, name),
        keep ? { uid: img.uid, gid: img.gid } : this.owner,
        keep ? img.mode & 0o7777 : 0o755,
      );
    });
    return fd as number;
  }

  async put(parts: string[], e: Entry, src: string, chmod: number | null): Promise<void> {
    const name = parts.at(-1) as string;
    const d = await this.dir(await this.resolveDir(parts.slice(0, -1)));
    try {
      const had = lstatAt(d, name);
      if (had !== null && !(had.isDirectory() && e.kind === 'dir')) {
        removeAt(d, name);
        this.parentsMemo.clear();
      }
      const { uid, gid } = this.owner;
      switch (e.kind) {
        case 'file':
          // COPYFILE_EXCL: O_CREAT|O_EXCL, which never follows a symlink at the name.
          await fsp.copyFile(
            src,
            at(d, name),
            constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE,
          );
          setOwnerMode(openNoFollowAt(d, name), { uid, gid }, chmod ?? e.mode);
          break;
        case 'dir':
          if (had === null || !had.isDirectory()) mkdirAt(d, name, 0o700);
          setOwnerMode(openDirAt(d, name), { uid, gid }, chmod ?? e.mode);
          break;
        case 'symlink':
          symlinkAt(d, name, e.link ?? '');
          await fsp.lchown(at(d, name), uid, gid);
          this.parentsMemo.clear();
          break;
      }
    } finally {
      close(d);
    }
  }

  /** ADD of a local archive: unpacked into the destination directory. */
  async extract(parts: string[], file: string, keepOwners: boolean): Promise<void> {
    close(await this.dir(parts));
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

/**
 * Writes the plan's files into `layer` (an empty directory); `imageDirs` are the stage's
 * layer directories, topmost first.
 */
export async function writeCopyLayer(
  plan: CopyPlan,
  layer: string,
  imageDirs: string[],
): Promise<void> {
  const { line } = plan;
  const view = new LayerStack(imageDirs);
  const owner =
    plan.chown === null ? { uid: 0, gid: 0 } : await resolveOwner(plan.chown, view, line);
  const w = new LayerWriter(layer, imageDirs, owner, line);
  try {
    const many = plan.sources.length > 1;
    const dest = await resolveDest(view, plan.dest, line);
    const destParts = dest.parts;
    const destIsDir =
      plan.dest.endsWith('/') || plan.dest.endsWith('/.') || dest.stat?.isDirectory() === true;
    if (many && !destIsDir)
      fail(
        line,
        `with more than one source file the destination must be a directory and end with a / (got "${plan.dest}")`,
      );
    for (const s of plan.sources) {
      const src = path.join(plan.tree.root, s.top.rel);
      if (s.top.kind === 'dir') {
        close(await w.dir(await w.resolveDir(destParts)));
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
          const into = await w.resolveDir(destParts);
          await w.extract(into, src, plan.chown === null).catch((err: unknown) => {
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
  } finally {
    w.close();
  }
}

/**
 * WORKDIR of a directory the image lacks: a layer with it (root-owned, 0755). False when it
 * exists.
 */
export async function writeDirLayer(
  abs: string,
  layer: string,
  imageDirs: string[],
  line: number,
): Promise<boolean> {
  const r = await resolveDest(new LayerStack(imageDirs), abs, line);
  if (r.stat !== null && r.stat.isDirectory()) return false;
  const w = new LayerWriter(layer, imageDirs, { uid: 0, gid: 0 }, line);
  try {
    close(await w.dir(r.parts));
  } finally {
    w.close();
  }
  return true;
}

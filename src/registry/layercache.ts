// The layer cache: each layer blob unpacked once into `<images>/layers/<hex>/` (overlayfs
// form, ready to be a lowerdir). Unpacking happens in tmp/ and the finished directory is
// renamed into place, so a layer directory either exists complete or not at all.
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { BlobNotFound, InvalidLayer } from '../errors/index.ts';
import { digestFromHash, digestHex, isDigest, type Digest } from './digest.ts';
import { scratchName } from '../files/index.ts';
import { DEFAULT_LAYER_LIMITS, extractLayer, type LayerLimits } from './unpack.ts';
import type { BlobStore } from './blobs.ts';

/** Opens a layer blob decompressed (gzip and zstd by magic bytes, else plain tar). */
async function openDecompressed(file: string): Promise<Readable> {
  const fh = await fsp.open(file, 'r');
  const magic = Buffer.alloc(4);
  try {
    await fh.read(magic, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const raw = fs.createReadStream(file, { highWaterMark: 1024 * 1024 });
  if (magic[0] === 0x1f && magic[1] === 0x8b) return raw.pipe(createGunzip());
  if (magic.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return raw.pipe(createZstdDecompress());
  return raw;
}

/**
 * Unpacks a layer (a blob file path or a stream) into `dir`, which must not exist: the work
 * happens in a scratch directory under `tmpDir` (on the same filesystem) that is renamed to
 * `dir` on success and removed on any failure, so a refused layer leaves nothing behind.
 * With `diffId` (and a path), the uncompressed stream must hash to it (OCI image spec
 * config.md §rootfs), as Docker checks.
 */
export async function unpackLayer(
  blob: string | Readable,
  dir: string,
  options: { limits?: Partial<LayerLimits>; tmpDir: string; label?: string; diffId?: Digest },
): Promise<void> {
  const limits = { ...DEFAULT_LAYER_LIMITS, ...options.limits };
  const label =
    options.label ?? (typeof blob === 'string' ? path.basename(blob) : path.basename(dir));
  // In the store's tmp dir (same filesystem), named for this process, so the sweep at the next
  // open removes what a killed unpack left.
  const tmp = scratchName(options.tmpDir, `layer-${path.basename(dir).slice(0, 12)}`);
  await fsp.mkdir(tmp, { mode: 0o755 });
  try {
    const hash = createHash('sha256');
    let input: Readable;
    if (typeof blob === 'string') {
      input = (await openDecompressed(blob)).pipe(
        new Transform({ transform: (c: Buffer, _e, cb) => cb(null, (hash.update(c), c)) }),
      );
    } else {
      input = blob;
    }
    await extractLayer(input, tmp, limits, label);
    if (options.diffId && typeof blob === 'string') {
      const actual = digestFromHash(hash);
      if (actual !== options.diffId) {
        throw new InvalidLayer(
          `layer ${label} refused: its content is ${actual}, but the image config says diff_id ${options.diffId}`,
          { layer: label, diffId: options.diffId, actual },
        );
      }
    }
    await fsp.chmod(tmp, 0o755);
    try {
      await fsp.rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Someone else finished the same layer first: theirs is identical.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

export class LayerCache {
  readonly dir: string;
  private readonly blobs: BlobStore;
  private readonly tmpDir: string;
  private readonly limits: LayerLimits;
  private readonly inflight = new Map<Digest, Promise<string>>();

  constructor(imagesDir: string, blobs: BlobStore, tmpDir: string, limits: LayerLimits) {
    this.dir = path.join(imagesDir, 'layers');
    this.blobs = blobs;
    this.tmpDir = tmpDir;
    this.limits = limits;
  }

  path(digest: Digest): string {
    return path.join(this.dir, digestHex(digest));
  }

  /** The unpacked directory of a layer blob, unpacking it first if needed. */
  async ensure(digest: Digest, diffId?: Digest): Promise<string> {
    const dir = this.path(digest);
    if ((await fsp.stat(dir).catch(() => null)) !== null) return dir;
    let p = this.inflight.get(digest);
    if (!p) {
      p = (async () => {
        await fsp.mkdir(this.dir, { recursive: true });
        const file = this.blobs.path(digest);
        if (!(await this.blobs.has(digest)))
          throw new BlobNotFound(`layer blob ${digest} is not in the store`, { digest });
        await unpackLayer(file, dir, {
          limits: this.limits,
          tmpDir: this.tmpDir,
          label: digest,
          diffId,
        });
        return dir;
      })().finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  /** Moves an already-unpacked directory (a build's upper dir) into the cache as `digest`. */
  async adopt(digest: Digest, src: string): Promise<boolean> {
    const dir = this.path(digest);
    await fsp.mkdir(this.dir, { recursive: true });
    try {
      await fsp.rename(src, dir);
      return true;
    } catch {
      return false;
    }
  }

  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.map((n) => `sha256:${n}`).filter(isDigest);
  }

  async remove(digest: Digest): Promise<void> {
    // Rename first so a half-deleted directory is never mistaken for a complete layer.
    const doomed = scratchName(this.tmpDir, `gc-${digestHex(digest).slice(0, 12)}`);
    try {
      await fsp.rename(this.path(digest), doomed);
    } catch {
      return;
    }
    await fsp.rm(doomed, { recursive: true, force: true });
  }
}

/** Disk usage of a directory tree in bytes (what GC frees by removing a layer dir). */
export async function treeSize(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      const st = await fsp.lstat(p).catch(() => null);
      if (!st) continue;
      total += st.blocks * 512;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return total;
}

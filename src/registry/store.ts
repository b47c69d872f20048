// The image store: blobs, manifests and tags, the layer cache, and the operations the
// builder and deployer use (resolve, layerDirs, diffToLayer, commit). Layout under
// `<dataDir>/images/`: blobs/sha256/<hex>, repositories/<repo>/…, layers/<hex>/, uploads/,
// tmp/ (swept of dead writers' files on open).
import { createHash, type Hash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { ImageNotFound, RegistryUnavailable } from '../errors/index.ts';
import { scratchName } from '../files/index.ts';
import { digestFromHash, parseDigest } from './digest.ts';
import { BlobStore, type BlobRange } from './blobs.ts';
import { sweepTmp } from './fsutil.ts';
import { commitDocuments, loadImage } from './images.ts';
import { LayerCache } from './layercache.ts';
import { tarDirectory, type WalkMode } from './layerwriter.ts';
import { ManifestStore, type StoredManifest } from './manifests.ts';
import { MediaTypes, type ContainerConfig } from './media.ts';
import {
  displayRef,
  formatImageRef,
  parseImageRef,
  parseRepoName,
  parseTag,
  candidateRepos,
  type ImageRef,
} from './ref.ts';
import { DEFAULT_LAYER_LIMITS, type LayerLimits } from './unpack.ts';
import { UploadArea } from './uploads.ts';
import { Puller, type EnsureOptions, type PullerOptions } from './pull.ts';
import { collectGarbage } from './gc.ts';
import type {
  CommitOptions,
  GcOptions,
  GcReport,
  Image,
  ImageLayer,
  ImageSource,
  ImageStore,
  ImageSummary,
} from './types.ts';

export type StoreOptions = {
  layerLimits?: Partial<LayerLimits>;
  /** Largest blob a registry client may upload (default 20 GiB). */
  maxUploadBytes?: number;
  /** Where resolveImage pulls missing images from (a RegistryClient pointed at a registry). */
  mirror?: ImageSource;
  /** How ensureImage/pullImage reach registries: Docker Hub mirrors, timeouts. */
  pull?: PullerOptions;
  /** gzip level of layers made by diffToLayer/importRootfs (default 1: builds favour speed). */
  gzipLevel?: number;
};

function tap(hash: Hash, count?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      count?.(chunk.length);
      cb(null, chunk);
    },
  });
}

function listRefs(have: string[]): string {
  return have.length ? have.slice(0, 20).join(', ') + (have.length > 20 ? ', …' : '') : 'none';
}

function fixedMtime(): Date {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date(0);
}

class FileImageStore implements ImageStore {
  readonly dataDir: string;
  readonly imagesDir: string;
  readonly tmpDir: string;
  readonly blobs: BlobStore;
  readonly manifests: ManifestStore;
  readonly layers: LayerCache;
  readonly uploads: UploadArea;
  readonly puller: Puller;
  private readonly options: StoreOptions;

  constructor(dataDir: string, options: StoreOptions) {
    this.dataDir = dataDir;
    this.imagesDir = path.join(dataDir, 'images');
    this.tmpDir = path.join(this.imagesDir, 'tmp');
    this.options = options;
    this.blobs = new BlobStore(this.imagesDir, this.tmpDir);
    this.manifests = new ManifestStore(this.imagesDir, this.blobs, this.tmpDir);
    this.layers = new LayerCache(this.imagesDir, this.blobs, this.tmpDir, {
      ...DEFAULT_LAYER_LIMITS,
      ...options.layerLimits,
    });
    this.puller = new Puller(dataDir, options.pull);
    this.uploads = new UploadArea(
      this.imagesDir,
      this.blobs,
      options.maxUploadBytes ?? 20 * 1024 ** 3,
    );
  }

  putBlob(source: Readable | Buffer, expectedDigest?: string) {
    return this.blobs.put(
      source,
      expectedDigest === undefined ? undefined : parseDigest(expectedDigest),
    );
  }
  hasBlob(digest: string) {
    return this.blobs.has(parseDigest(digest));
  }
  blobSize(digest: string) {
    return this.blobs.size(parseDigest(digest));
  }
  openBlob(digest: string, range?: BlobRange) {
    return this.blobs.open(parseDigest(digest), range);
  }
  readBlob(digest: string, maxBytes?: number) {
    return this.blobs.read(parseDigest(digest), maxBytes);
  }
  blobPath(digest: string) {
    return this.blobs.path(parseDigest(digest));
  }
  tmpFile(label: string) {
    return scratchName(this.tmpDir, label);
  }
  adoptBlob(tmpFile: string, digest: string) {
    return this.blobs.adopt(tmpFile, parseDigest(digest));
  }
  deleteBlob(digest: string) {
    return this.blobs.delete(parseDigest(digest));
  }

  putManifest(repo: string, reference: string, bytes: Buffer, mediaType?: string) {
    return this.manifests.put(repo, reference, bytes, mediaType);
  }
  getManifest(repo: string, reference: string): Promise<StoredManifest> {
    return this.manifests.get(repo, reference);
  }
  async findManifest(raw: string | ImageRef): Promise<StoredManifest & { repository: string }> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    let last: unknown = null;
    for (const repo of candidateRepos(ref)) {
      try {
        return {
          ...(await this.manifests.get(repo, ref.digest ?? (ref.tag as string))),
          repository: repo,
        };
      } catch (err) {
        if (!(err instanceof ImageNotFound)) throw err;
        last = err;
      }
    }
    throw last;
  }
  deleteManifest(repo: string, reference: string) {
    return this.manifests.delete(repo, reference);
  }
  tag(repo: string, tag: string, digest: string) {
    return this.manifests.tag(repo, tag, parseDigest(digest));
  }
  tags(repo: string) {
    return this.manifests.tags(repo);
  }
  repositories() {
    return this.manifests.repositories();
  }
  linkBlob(repo: string, digest: string) {
    return this.manifests.linkBlob(parseRepoName(repo), parseDigest(digest));
  }
  hasBlobLink(repo: string, digest: string) {
    return this.manifests.hasBlobLink(repo, parseDigest(digest));
  }
  unlinkBlob(repo: string, digest: string) {
    return this.manifests.unlinkBlob(repo, parseDigest(digest));
  }

  async images(): Promise<ImageSummary[]> {
    const out: ImageSummary[] = [];
    for (const repo of await this.repositories()) {
      for (const tag of await this.tags(repo)) {
        try {
          const img = await loadImage(this.manifests, this.blobs, repo, tag, `${repo}:${tag}`);
          const size = img.manifest.config.size + img.layers.reduce((n, l) => n + l.size, 0);
          out.push({
            ref: img.ref,
            digest: img.digest,
            size,
            created: img.configFile.created ?? null,
          });
        } catch {
          // A tag whose content is incomplete or for another platform is not a runnable image.
        }
      }
    }
    return out;
  }

  async resolveImage(raw: string | ImageRef): Promise<Image> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    const reference = ref.digest ?? (ref.tag as string);
    const candidates = candidateRepos(ref);
    try {
      let lastErr: unknown = null;
      for (const repo of candidates) {
        try {
          return await loadImage(
            this.manifests,
            this.blobs,
            repo,
            reference,
            formatImageRef({ ...ref, domain: null, repository: repo } as ImageRef),
          );
        } catch (err) {
          if (!(err instanceof ImageNotFound)) throw err;
          lastErr = err;
        }
      }
      throw lastErr;
    } catch (err) {
      if (!(err instanceof ImageNotFound)) throw err;
      if (this.options.mirror) return this.options.mirror.pull(this, ref);
      const have = (await this.images()).map((i) => i.ref);
      throw new ImageNotFound(
        `image ${formatImageRef(ref)} not found. Images here: ${listRefs(have)}. Pull it with \`paas images:pull REF\`, or add one with \`paas images:import FILE\` (a docker save archive or OCI layout).`,
        { ref: formatImageRef(ref), available: have },
        { cause: err },
      );
    }
  }

  async ensureImage(raw: string | ImageRef, options: EnsureOptions = {}): Promise<Image> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    try {
      return await this.puller.ensure(this, ref, options);
    } catch (err) {
      // Offline or unknown: one line naming the image and what each registry said, with the
      // images that are here (the local tags always serve).
      if (!(err instanceof ImageNotFound || err instanceof RegistryUnavailable)) throw err;
      const have = (await this.images()).map((i) => i.ref);
      throw new ImageNotFound(
        `${err.message}. Images here: ${listRefs(have)}`,
        { ref: displayRef(ref), available: have },
        { cause: err },
      );
    }
  }

  pullImage(raw: string | ImageRef, options: EnsureOptions = {}): Promise<Image> {
    return this.puller.pull(this, typeof raw === 'string' ? parseImageRef(raw) : raw, options);
  }

  async layerDirs(image: Image): Promise<string[]> {
    const dirs: string[] = [];
    for (const l of image.layers) dirs.push(await this.layers.ensure(l.digest, l.diffId));
    return dirs.reverse();
  }

  diffToLayer(
    upperDir: string,
    options: { adopt?: boolean; mtime?: Date } = {},
  ): Promise<ImageLayer> {
    return this.packDirectory(upperDir, 'overlay', options);
  }

  private async packDirectory(
    dir: string,
    mode: WalkMode,
    options: { adopt?: boolean; mtime?: Date },
  ): Promise<ImageLayer> {
    const diffHash = createHash('sha256');
    const blobHash = createHash('sha256');
    let size = 0;
    const tmp = scratchName(this.tmpDir, 'layer.tar.gz');
    try {
      await pipeline(
        Readable.from(tarDirectory(dir, { mode, mtime: options.mtime ?? fixedMtime() })),
        tap(diffHash),
        createGzip({ level: this.options.gzipLevel ?? 1 }),
        tap(blobHash, (n) => (size += n)),
        fs.createWriteStream(tmp),
      );
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    const digest = digestFromHash(blobHash);
    await this.blobs.adopt(tmp, digest);
    if (options.adopt && (await fsp.stat(this.layers.path(digest)).catch(() => null)) === null)
      await this.layers.adopt(digest, dir);
    return { digest, diffId: digestFromHash(diffHash), size, mediaType: MediaTypes.ociLayerGzip };
  }

  async commitImage(options: CommitOptions): Promise<Image> {
    const repo = parseRepoName(options.repo);
    const tag = parseTag(options.tag);
    const docs = commitDocuments(options);
    await this.blobs.put(docs.config);
    const digest = await this.manifests.put(repo, tag, docs.manifest, MediaTypes.ociManifest);
    return {
      ref: `${repo}:${tag}`,
      repository: repo,
      digest,
      manifest: docs.manifestDoc,
      configDigest: docs.manifestDoc.config.digest,
      configFile: docs.configFile,
      config: docs.configFile.config ?? {},
      layers: docs.layers,
      platform: { os: docs.configFile.os, architecture: docs.configFile.architecture },
    };
  }

  // Imports and exports (base images, `paas images:import`, archives) load at their first
  // use: an idle daemon does none (test/lazy-imports.test.ts).
  async importImage(p: string, tags?: string[]) {
    return (await import('./import.ts')).importImage(this, p, tags);
  }
  async importOciLayout(dir: string, tags?: string[]) {
    return (await import('./oci-layout.ts')).importOciLayout(this, dir, tags);
  }
  async exportOciLayout(ref: string, dir: string) {
    return (await import('./oci-layout.ts')).exportOciLayout(this, ref, dir);
  }
  async importDockerArchive(file: string) {
    return (await import('./docker-archive.ts')).importDockerArchive(this, file);
  }
  async exportDockerArchive(ref: string, file: string) {
    return (await import('./docker-archive.ts')).exportDockerArchive(this, ref, file);
  }

  /** Packs a root filesystem directory into a one-layer image (base images). */
  async importRootfs(dir: string, rawRef: string, config: ContainerConfig): Promise<Image> {
    const ref = parseImageRef(rawRef);
    const layer = await this.packDirectory(dir, 'rootfs', {});
    return this.commitImage({
      repo: ref.repository,
      tag: ref.tag ?? 'latest',
      base: null,
      newLayers: [layer],
      config,
      history: [
        {
          created: new Date(0).toISOString(),
          created_by: `paas importRootfs ${path.basename(dir)}`,
        },
      ],
      created: new Date(0).toISOString(),
    });
  }

  gc(options: GcOptions = {}): Promise<GcReport> {
    return collectGarbage(this, options);
  }
}

export type { FileImageStore };

export async function openStore(dataDir: string, options: StoreOptions = {}): Promise<ImageStore> {
  const store = new FileImageStore(path.resolve(dataDir), options);
  for (const d of [
    store.tmpDir,
    store.blobs.dir,
    store.layers.dir,
    store.manifests.root,
    store.uploads.dir,
  ]) {
    await fsp.mkdir(d, { recursive: true });
  }
  await sweepTmp(store.tmpDir);
  return store;
}

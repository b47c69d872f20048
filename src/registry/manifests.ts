// Repositories, manifests and tags as plain files (the layout of distribution's filesystem
// driver, simplified): `<images>/repositories/<repo>/_manifests/revisions/<hex>` holds the
// media type of a manifest stored as a blob, `_manifests/tags/<tag>` holds a digest, and
// `_layers/<hex>` links a blob into the repository (what a registry client may read there).
// Every write is a rename, so a crash leaves either the old or the new tag.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BlobNotFound, ImageNotFound, InvalidArgument } from '../errors/index.ts';
import { digestHex, isDigest, sha256, type Digest } from './digest.ts';
import { readTextOrNull, writeFileAtomic } from './fsutil.ts';
import { parseManifest, type Descriptor, type ParsedManifest } from './media.ts';
import type { BlobStore } from './blobs.ts';
import { isTag, parseRepoName, parseTag, type RepoName, type Tag } from './ref.ts';

export type StoredManifest = {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  parsed: ParsedManifest;
};

/** Descriptors a manifest needs present: config + layers, or an index's manifests. */
export function references(parsed: ParsedManifest): Descriptor[] {
  if (parsed.kind === 'index') return parsed.index.manifests;
  return [
    parsed.manifest.config,
    ...parsed.manifest.layers.filter((l) => !(l.urls && l.urls.length > 0)),
  ];
}

export class ManifestStore {
  readonly root: string;
  private readonly blobs: BlobStore;
  private readonly tmpDir: string;

  constructor(imagesDir: string, blobs: BlobStore, tmpDir: string) {
    this.root = path.join(imagesDir, 'repositories');
    this.blobs = blobs;
    this.tmpDir = tmpDir;
  }

  private repoDir(repo: RepoName): string {
    return path.join(this.root, repo);
  }

  private revisionPath(repo: RepoName, digest: Digest): string {
    return path.join(this.repoDir(repo), '_manifests', 'revisions', digestHex(digest));
  }

  private tagPath(repo: RepoName, tag: Tag): string {
    return path.join(this.repoDir(repo), '_manifests', 'tags', tag);
  }

  private linkPath(repo: RepoName, digest: Digest): string {
    return path.join(this.repoDir(repo), '_layers', digestHex(digest));
  }

  async put(
    repoRaw: string,
    reference: string,
    bytes: Buffer,
    mediaType?: string,
  ): Promise<Digest> {
    const repo = parseRepoName(repoRaw);
    const parsed = parseManifest(bytes, mediaType);
    const digest = sha256(bytes);
    if (isDigest(reference)) {
      if (reference !== digest)
        throw new InvalidArgument(`manifest digest is ${digest}, not ${reference}`, {
          code: 'DIGEST_INVALID',
        });
    } else {
      parseTag(reference);
    }
    for (const d of references(parsed)) {
      if (!(await this.blobs.has(d.digest))) {
        throw new BlobNotFound(
          `manifest references ${d.mediaType} ${d.digest}, which is not in the store`,
          { code: 'MANIFEST_BLOB_UNKNOWN', digest: d.digest },
        );
      }
    }
    await this.blobs.put(bytes, digest);
    for (const d of references(parsed)) await this.linkBlob(repo, d.digest);
    await this.linkBlob(repo, digest);
    await writeFileAtomic(this.tmpDir, this.revisionPath(repo, digest), parsed.mediaType);
    if (isTag(reference)) await writeFileAtomic(this.tmpDir, this.tagPath(repo, reference), digest);
    return digest;
  }

  async resolveDigest(repoRaw: string, reference: string): Promise<Digest> {
    const repo = parseRepoName(repoRaw);
    if (isDigest(reference)) return reference;
    const tag = parseTag(reference);
    const d = (await readTextOrNull(this.tagPath(repo, tag)))?.trim();
    if (!d || !isDigest(d))
      throw new ImageNotFound(`${repo}:${tag} not found`, {
        code: 'MANIFEST_UNKNOWN',
        repository: repo,
        tag,
      });
    return d;
  }

  async get(repoRaw: string, reference: string): Promise<StoredManifest> {
    const repo = parseRepoName(repoRaw);
    const digest = await this.resolveDigest(repo, reference);
    const mediaType = await readTextOrNull(this.revisionPath(repo, digest));
    if (mediaType === null || !(await this.blobs.has(digest))) {
      throw new ImageNotFound(`${repo}@${digest} not found`, {
        code: 'MANIFEST_UNKNOWN',
        repository: repo,
        digest,
      });
    }
    const bytes = await this.blobs.read(digest);
    return { digest, mediaType, bytes, parsed: parseManifest(bytes, mediaType) };
  }

  /** Deletes a tag, or a manifest by digest together with every tag that points at it. */
  async delete(repoRaw: string, reference: string): Promise<void> {
    const repo = parseRepoName(repoRaw);
    if (!isDigest(reference)) {
      const tag = parseTag(reference);
      await this.resolveDigest(repo, tag);
      await fsp.rm(this.tagPath(repo, tag), { force: true });
      return;
    }
    if ((await readTextOrNull(this.revisionPath(repo, reference))) === null) {
      throw new ImageNotFound(`${repo}@${reference} not found`, {
        code: 'MANIFEST_UNKNOWN',
        repository: repo,
        digest: reference,
      });
    }
    for (const tag of await this.tags(repo)) {
      if ((await readTextOrNull(this.tagPath(repo, tag as Tag)))?.trim() === reference)
        await fsp.rm(this.tagPath(repo, tag as Tag), { force: true });
    }
    await fsp.rm(this.revisionPath(repo, reference), { force: true });
  }

  /** Points `tag` at a manifest already in the store (any repository's). */
  async tag(repoRaw: string, tagRaw: string, digest: Digest): Promise<void> {
    const repo = parseRepoName(repoRaw);
    const tag = parseTag(tagRaw);
    if ((await readTextOrNull(this.revisionPath(repo, digest))) === null) {
      if (!(await this.blobs.has(digest)))
        throw new ImageNotFound(`manifest ${digest} not found`, { digest });
      await this.put(repo, digest, await this.blobs.read(digest));
    }
    await writeFileAtomic(this.tmpDir, this.tagPath(repo, tag), digest);
  }

  async tags(repoRaw: string): Promise<string[]> {
    const repo = parseRepoName(repoRaw);
    const dir = path.join(this.repoDir(repo), '_manifests');
    if ((await fsp.stat(dir).catch(() => null)) === null)
      throw new ImageNotFound(`repository ${repo} not found`, {
        code: 'NAME_UNKNOWN',
        repository: repo,
      });
    const names = await fsp.readdir(path.join(dir, 'tags')).catch(() => [] as string[]);
    return names.filter(isTag).sort();
  }

  async revisions(repoRaw: string): Promise<Digest[]> {
    const repo = parseRepoName(repoRaw);
    const names = await fsp
      .readdir(path.join(this.repoDir(repo), '_manifests', 'revisions'))
      .catch(() => [] as string[]);
    return names.map((n) => `sha256:${n}`).filter(isDigest);
  }

  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (!e.isDirectory() || e.name.startsWith('_')) continue;
        const name = prefix ? `${prefix}/${e.name}` : e.name;
        if ((await fsp.stat(path.join(dir, e.name, '_manifests')).catch(() => null)) !== null)
          out.push(name);
        await walk(path.join(dir, e.name), name);
      }
    };
    await walk(this.root, '');
    return out.sort();
  }

  async linkBlob(repo: RepoName, digest: Digest): Promise<void> {
    const p = this.linkPath(repo, digest);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, '');
  }

  async hasBlobLink(repoRaw: string, digest: Digest): Promise<boolean> {
    return (
      (await fsp.stat(this.linkPath(parseRepoName(repoRaw), digest)).catch(() => null)) !== null
    );
  }

  async unlinkBlob(repoRaw: string, digest: Digest): Promise<boolean> {
    const p = this.linkPath(parseRepoName(repoRaw), digest);
    if ((await fsp.stat(p).catch(() => null)) === null) return false;
    await fsp.rm(p, { force: true });
    return true;
  }

  /** Drops blob links (GC): links only grant access, they never keep a blob alive. */
  async pruneLinks(repoRaw: string, keep: (d: Digest) => boolean): Promise<void> {
    const dir = path.join(this.repoDir(parseRepoName(repoRaw)), '_layers');
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      const d = `sha256:${name}`;
      if (isDigest(d) && !keep(d)) await fsp.rm(path.join(dir, name), { force: true });
    }
  }

  async removeRevision(repoRaw: string, digest: Digest): Promise<void> {
    await fsp.rm(this.revisionPath(parseRepoName(repoRaw), digest), { force: true });
  }
}

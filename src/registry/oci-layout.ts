// OCI image layouts (OCI image spec image-layout.md), as `skopeo copy oci:DIR[:TAG]` reads
// and writes them: `oci-layout`, `index.json` whose descriptors name their tag in the
// `org.opencontainers.image.ref.name` annotation, and `blobs/sha256/<hex>`. Every blob read
// from a layout is verified against its digest on the way into the store.
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgument } from '../errors/index.ts';
import { writeFileWholeAsync } from '../files/index.ts';
import { digestHex, parseDigest, sha256, type Digest } from './digest.ts';
import { digestMismatch } from './blobs.ts';
import { MediaTypes, parseManifest, type Descriptor, type ImageIndex } from './media.ts';
import { references } from './manifests.ts';
import { formatImageRef, parseImageRef, type ImageRef } from './ref.ts';
import type { Image, ImageStore } from './types.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

function layoutBlob(dir: string, digest: Digest): string {
  return path.join(dir, 'blobs', 'sha256', digestHex(parseDigest(digest)));
}

async function readLayoutManifest(dir: string, digest: Digest): Promise<Buffer> {
  const bytes = await fsp.readFile(layoutBlob(dir, digest)).catch(() => {
    throw new InvalidArgument(`OCI layout ${dir} lacks blob ${digest}`);
  });
  const actual = sha256(bytes);
  if (actual !== digest) throw digestMismatch(digest, actual);
  return bytes;
}

/** Copies a manifest tree into `repo` by digest (children before parents), verifying blobs. */
async function importTree(
  store: ImageStore,
  dir: string,
  repo: string,
  desc: Descriptor,
): Promise<Buffer> {
  const bytes = await readLayoutManifest(dir, desc.digest);
  const parsed = parseManifest(bytes, desc.mediaType);
  for (const ref of references(parsed)) {
    if (parsed.kind === 'index') {
      await importTree(store, dir, repo, ref);
    } else if (!(await store.hasBlob(ref.digest))) {
      await store.putBlob(fs.createReadStream(layoutBlob(dir, ref.digest)), ref.digest);
    }
  }
  await store.putManifest(repo, desc.digest, bytes, parsed.mediaType);
  return bytes;
}

function namesFor(desc: Descriptor, tags: string[] | undefined, count: number): ImageRef[] {
  const refName = desc.annotations?.[REF_NAME];
  if (tags && tags.length > 0) {
    const refs = tags.map(parseImageRef);
    if (count === 1) return refs;
    return refs.filter((r) => r.tag === refName);
  }
  const full =
    desc.annotations?.[CONTAINERD_NAME] ?? (refName && /[/:@]/.test(refName) ? refName : undefined);
  if (full) return [parseImageRef(full)];
  if (refName) {
    throw new InvalidArgument(
      `OCI layout names only the tag "${refName}"; pass the image name to import it as (e.g. myapp:${refName})`,
      { tag: refName },
    );
  }
  return [];
}

export async function importOciLayout(
  store: ImageStore,
  dir: string,
  tags?: string[],
): Promise<Image[]> {
  const layout = JSON.parse(
    await fsp.readFile(path.join(dir, 'oci-layout'), 'utf8').catch(() => '{}'),
  ) as { imageLayoutVersion?: string };
  if (typeof layout.imageLayoutVersion !== 'string')
    throw new InvalidArgument(`${dir} is not an OCI image layout (no oci-layout file)`);
  const top = parseManifest(await fsp.readFile(path.join(dir, 'index.json')), MediaTypes.ociIndex);
  if (top.kind !== 'index') throw new InvalidArgument(`${dir}/index.json is not an image index`);
  const images: Image[] = [];
  for (const desc of top.index.manifests) {
    for (const ref of namesFor(desc, tags, top.index.manifests.length)) {
      const bytes = await importTree(store, dir, ref.repository, desc);
      if (ref.tag) await store.putManifest(ref.repository, ref.tag, bytes, desc.mediaType);
      images.push(await store.resolveImage(ref.tag ? ({ ...ref, digest: null } as ImageRef) : ref));
    }
  }
  if (images.length === 0)
    throw new InvalidArgument(
      `OCI layout ${dir} has no image to import${tags ? ` matching ${tags.join(', ')}` : ''}`,
    );
  return images;
}

async function copyBlob(store: ImageStore, dir: string, digest: Digest): Promise<void> {
  const dest = layoutBlob(dir, digest);
  if (fs.existsSync(dest)) return;
  const tmp = `${dest}.tmp-${process.pid}`;
  await fsp.copyFile(store.blobPath(digest), tmp, fs.constants.COPYFILE_FICLONE);
  await fsp.rename(tmp, dest);
}

async function exportTree(
  store: ImageStore,
  dir: string,
  digest: Digest,
  mediaType?: string,
): Promise<void> {
  const bytes = await store.readBlob(digest);
  const parsed = parseManifest(bytes, mediaType);
  for (const ref of references(parsed)) {
    if (parsed.kind === 'index') {
      if (await store.hasBlob(ref.digest)) await exportTree(store, dir, ref.digest, ref.mediaType);
    } else {
      await copyBlob(store, dir, ref.digest);
    }
  }
  await copyBlob(store, dir, digest);
}

/** Writes (or adds to) an OCI layout at `dir`; the entry's ref.name is the tag, as skopeo does. */
export async function exportOciLayout(
  store: ImageStore,
  rawRef: string,
  dir: string,
): Promise<void> {
  const ref = parseImageRef(rawRef);
  const stored = await store.findManifest(ref);
  await fsp.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await exportTree(store, dir, stored.digest, stored.mediaType);
  await fsp.writeFile(
    path.join(dir, 'oci-layout'),
    JSON.stringify({ imageLayoutVersion: '1.0.0' }),
  );
  const indexPath = path.join(dir, 'index.json');
  const existing = await fsp
    .readFile(indexPath)
    .then((b) => parseManifest(b, MediaTypes.ociIndex))
    .catch(() => null);
  const refName = ref.tag ?? undefined;
  const kept =
    existing?.kind === 'index'
      ? existing.index.manifests.filter((m) => !refName || m.annotations?.[REF_NAME] !== refName)
      : [];
  const annotations: Record<string, string> = {
    [CONTAINERD_NAME]: formatImageRef({ ...ref, domain: null } as ImageRef),
  };
  if (refName) annotations[REF_NAME] = refName;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      ...kept,
      {
        mediaType: stored.mediaType,
        digest: stored.digest,
        size: stored.bytes.length,
        annotations,
      },
    ],
  };
  await writeFileWholeAsync(indexPath, JSON.stringify(index));
}

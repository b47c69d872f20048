// `docker save` archives: a tar holding `manifest.json` ([{Config, RepoTags, Layers}]), the
// config JSON and one uncompressed `layer.tar` per layer (Docker ≥ 25 stores them under
// blobs/sha256/ and may add symlinks between duplicates). Import streams the archive once:
// every file goes straight into the blob store (hashed on the way), symlinks are resolved
// inside the archive's own namespace, and nothing is written to disk by path, so a hostile
// archive cannot reach outside the store. Layers stay uncompressed (`…layer.v1.tar`): their
// digest is then their diff_id, which is verified.
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { createHash } from 'node:crypto';
import * as tar from 'tar';
import { InvalidArgument } from '../errors/index.ts';
import { digestFromHash, digestHex, sha256, type Digest } from './digest.ts';
import { digestMismatch } from './blobs.ts';
import { MediaTypes, parseImageConfig, type ImageManifest } from './media.ts';
import { parseImageRef, type ImageRef } from './ref.ts';
import type { Image, ImageStore } from './types.ts';

type ArchiveFile =
  | { kind: 'data'; data: Buffer }
  | { kind: 'blob'; digest: Digest; size: number }
  | { kind: 'link'; target: string };

const SMALL = /(^|\/)(manifest\.json|repositories|index\.json|oci-layout|[^/]*\.json)$/;

function archivePath(raw: string): string {
  return path.posix
    .normalize(raw.replace(/^\/+/, ''))
    .replace(/^(\.\/)+/, '')
    .replace(/\/$/, '');
}

async function readArchive(store: ImageStore, file: string): Promise<Map<string, ArchiveFile>> {
  const files = new Map<string, ArchiveFile>();
  const pending: Promise<void>[] = [];
  let failure: unknown = null;
  const parser = new tar.Parser({ strict: true });
  parser.on('entry', (e: tar.ReadEntry) => {
    const name = archivePath(e.path);
    if (e.type === 'SymbolicLink' && e.linkpath) {
      files.set(name, {
        kind: 'link',
        target: archivePath(path.posix.join(path.posix.dirname(name), e.linkpath)),
      });
      e.resume();
    } else if (e.type === 'Link' && e.linkpath) {
      files.set(name, { kind: 'link', target: archivePath(e.linkpath) });
      e.resume();
    } else if (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') {
      if (SMALL.test(name) && (e.size ?? 0) < 64 * 1024 * 1024) {
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => files.set(name, { kind: 'data', data: Buffer.concat(chunks) }));
      } else {
        pending.push(
          store.putBlob(Readable.from(e)).then(
            (r) => void files.set(name, { kind: 'blob', ...r }),
            (err) => void (failure ??= err),
          ),
        );
      }
    } else {
      e.resume();
    }
  });
  await pipeline(fs.createReadStream(file), parser as unknown as NodeJS.WritableStream);
  await Promise.all(pending);
  if (failure) throw failure;
  return files;
}

function lookup(files: Map<string, ArchiveFile>, name: string): ArchiveFile {
  let cur = archivePath(name);
  for (let hops = 0; hops < 16; hops++) {
    const f = files.get(cur);
    if (!f) break;
    if (f.kind !== 'link') return f;
    cur = f.target;
  }
  throw new InvalidArgument(`docker archive lacks ${name}`);
}

async function sniff(store: ImageStore, digest: Digest): Promise<string> {
  const fh = await fsp.open(store.blobPath(digest), 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    if (b[0] === 0x1f && b[1] === 0x8b) return MediaTypes.ociLayerGzip;
    if (b.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return MediaTypes.ociLayerZstd;
    return MediaTypes.ociLayer;
  } finally {
    await fh.close();
  }
}

export async function importDockerArchive(store: ImageStore, file: string): Promise<Image[]> {
  const files = await readArchive(store, file);
  const m = files.get('manifest.json');
  if (!m || m.kind !== 'data')
    throw new InvalidArgument(`${file} is not a docker save archive (no manifest.json)`);
  const entries = JSON.parse(m.data.toString('utf8')) as {
    Config: string;
    RepoTags: string[] | null;
    Layers: string[];
  }[];
  if (!Array.isArray(entries)) throw new InvalidArgument(`${file}: manifest.json is not a list`);
  const images: Image[] = [];
  for (const entry of entries) {
    const c = lookup(files, entry.Config);
    const configBytes =
      c.kind === 'data' ? c.data : await store.readBlob((c as { digest: Digest }).digest);
    const config = parseImageConfig(configBytes);
    const { digest: configDigest } = await store.putBlob(configBytes);
    if (config.rootfs.diff_ids.length !== entry.Layers.length)
      throw new InvalidArgument(
        `${file}: ${entry.Config} lists ${config.rootfs.diff_ids.length} diff_ids for ${entry.Layers.length} layers`,
      );
    const layers = [];
    for (const [i, l] of entry.Layers.entries()) {
      const f = lookup(files, l);
      const blob =
        f.kind === 'blob' ? f : { ...(await store.putBlob((f as { data: Buffer }).data)) };
      const mediaType = await sniff(store, blob.digest);
      if (mediaType === MediaTypes.ociLayer && blob.digest !== config.rootfs.diff_ids[i])
        throw digestMismatch(config.rootfs.diff_ids[i] as Digest, blob.digest);
      layers.push({ mediaType, digest: blob.digest, size: blob.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const tags = (entry.RepoTags ?? []).map(parseImageRef);
    if (tags.length === 0)
      throw new InvalidArgument(
        `${file}: image ${entry.Config} has no RepoTags; tag it before docker save`,
      );
    for (const ref of tags) {
      await store.putManifest(
        ref.repository,
        ref.tag ?? sha256(bytes),
        bytes,
        MediaTypes.ociManifest,
      );
      images.push(await store.resolveImage(ref));
    }
  }
  return images;
}

/** Docker's short form: `library/x:t` is saved as `x:t`. */
function dockerName(ref: ImageRef): string {
  const repo = ref.repository.startsWith('library/')
    ? ref.repository.slice('library/'.length)
    : ref.repository;
  return `${repo}:${ref.tag ?? 'latest'}`;
}

export async function exportDockerArchive(
  store: ImageStore,
  rawRef: string,
  file: string,
): Promise<void> {
  const ref = parseImageRef(rawRef);
  const image = await store.resolveImage(ref);
  const staging = await fsp.mkdtemp(path.join(os.tmpdir(), 'paas-docker-save-'));
  try {
    const configName = `${digestHex(image.configDigest)}.json`;
    await fsp.copyFile(store.blobPath(image.configDigest), path.join(staging, configName));
    const layerNames: string[] = [];
    for (const l of image.layers) {
      const name = `${digestHex(l.diffId)}/layer.tar`;
      layerNames.push(name);
      if (fs.existsSync(path.join(staging, name))) continue;
      await fsp.mkdir(path.join(staging, digestHex(l.diffId)), { recursive: true });
      const hash = createHash('sha256');
      const steps: NodeJS.ReadWriteStream[] = [];
      const kind = await sniff(store, l.digest);
      if (kind === MediaTypes.ociLayerGzip) steps.push(createGunzip());
      if (kind === MediaTypes.ociLayerZstd) steps.push(createZstdDecompress());
      steps.push(
        new Transform({ transform: (c: Buffer, _e, cb) => cb(null, (hash.update(c), c)) }),
      );
      await pipeline([
        fs.createReadStream(store.blobPath(l.digest)),
        ...steps,
        fs.createWriteStream(path.join(staging, name)),
      ]);
      const actual = digestFromHash(hash);
      if (actual !== l.diffId) throw digestMismatch(l.diffId, actual);
    }
    const repoTag = dockerName(ref);
    const manifest = [
      { Config: configName, RepoTags: ref.tag ? [repoTag] : [], Layers: layerNames },
    ];
    await fsp.writeFile(path.join(staging, 'manifest.json'), JSON.stringify(manifest));
    const top = image.layers.at(-1);
    if (ref.tag && top) {
      const [repo, tag] = [repoTag.slice(0, repoTag.lastIndexOf(':')), ref.tag];
      await fsp.writeFile(
        path.join(staging, 'repositories'),
        JSON.stringify({ [repo]: { [tag]: digestHex(top.diffId) } }),
      );
    }
    const names = (await fsp.readdir(staging)).sort();
    await tar.c({ cwd: staging, file, portable: true, mtime: new Date(0) }, names);
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

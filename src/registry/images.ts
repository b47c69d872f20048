// From manifests to runnable images and back: resolving a manifest (or an index, choosing
// the host's platform) with its config into an Image, and writing the config + manifest
// of a new image on top of a base (what the builder commits).
import { ImageNotFound, InvalidArgument } from '../errors/index.ts';
import { sha256, type Digest } from './digest.ts';
import {
  hostPlatform,
  MediaTypes,
  parseImageConfig,
  parseManifest,
  type ContainerConfig,
  type HistoryEntry,
  type ImageConfigFile,
  type ImageManifest,
} from './media.ts';
import type { BlobStore } from './blobs.ts';
import type { ManifestStore } from './manifests.ts';
import type { CommitOptions, Image, ImageLayer } from './types.ts';

/** Loads `repo`/`reference` as an Image; an index resolves to the host platform's manifest. */
export async function loadImage(
  manifests: ManifestStore,
  blobs: BlobStore,
  repo: string,
  reference: string,
  refText: string,
): Promise<Image> {
  const stored = await manifests.get(repo, reference);
  let digest = stored.digest;
  let parsed = stored.parsed;
  const want = hostPlatform();
  for (let depth = 0; parsed.kind === 'index'; depth++) {
    if (depth > 3) throw new InvalidArgument(`${refText}: image indexes nest too deeply`);
    const pick =
      parsed.index.manifests.find(
        (m) => m.platform?.os === want.os && m.platform.architecture === want.architecture,
      ) ?? parsed.index.manifests.find((m) => !m.platform);
    if (!pick) {
      const have = parsed.index.manifests
        .map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : '?'))
        .join(', ');
      throw new ImageNotFound(
        `${refText} has no ${want.os}/${want.architecture} image (it has: ${have || 'none'})`,
        { ref: refText },
      );
    }
    digest = pick.digest;
    parsed = parseManifest(await blobs.read(digest), pick.mediaType);
  }
  const manifest = parsed.manifest;
  const configBytes = await blobs.read(manifest.config.digest);
  if (sha256(configBytes) !== manifest.config.digest)
    throw new InvalidArgument(`${refText}: config blob does not match its digest`);
  const configFile = parseImageConfig(configBytes);
  const diffIds = configFile.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new InvalidArgument(
      `${refText}: manifest has ${manifest.layers.length} layers but the config lists ${diffIds.length} diff_ids`,
    );
  }
  const layers: ImageLayer[] = manifest.layers.map((l, i) => ({
    digest: l.digest,
    diffId: diffIds[i] as Digest,
    size: l.size,
    mediaType: l.mediaType,
  }));
  return {
    ref: refText,
    repository: repo,
    digest,
    manifest,
    configDigest: manifest.config.digest,
    configFile,
    config: configFile.config ?? {},
    layers,
    platform: {
      os: configFile.os,
      architecture: configFile.architecture,
      ...(configFile.variant ? { variant: configFile.variant } : {}),
    },
  };
}

function defaultCreated(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString();
  return new Date().toISOString();
}

/** Docker layer media types map to their OCI twins (same bytes) so one manifest type serves. */
function ociLayerType(l: ImageLayer): string {
  if (!l.mediaType || l.mediaType === MediaTypes.dockerLayerGzip) return MediaTypes.ociLayerGzip;
  if (l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar') return MediaTypes.ociLayer;
  return l.mediaType;
}

/** The config and manifest bytes of an image made of `base` plus `newLayers`. */
export function commitDocuments(opts: CommitOptions): {
  config: Buffer;
  configFile: ImageConfigFile;
  manifest: Buffer;
  manifestDoc: ImageManifest;
  layers: ImageLayer[];
} {
  const created = opts.created ?? defaultCreated();
  const baseLayers = opts.base?.layers ?? [];
  const layers = [...baseLayers, ...opts.newLayers];
  const baseHistory = opts.base?.configFile.history ?? [];
  const history: HistoryEntry[] = [
    ...baseHistory,
    ...(opts.history ?? opts.newLayers.map(() => ({ created, created_by: 'paas build' }))),
  ];
  const platform = opts.base?.platform ?? hostPlatform();
  const config: ContainerConfig = Object.fromEntries(
    Object.entries(opts.config).filter(([, v]) => v !== undefined),
  ) as ContainerConfig;
  const configFile: ImageConfigFile = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history,
  };
  const configBytes = Buffer.from(JSON.stringify(configFile));
  const manifestDoc: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: {
      mediaType: MediaTypes.ociConfig,
      digest: sha256(configBytes),
      size: configBytes.length,
    },
    layers: layers.map((l) => ({ mediaType: ociLayerType(l), digest: l.digest, size: l.size })),
  };
  return {
    config: configBytes,
    configFile,
    manifest: Buffer.from(JSON.stringify(manifestDoc)),
    manifestDoc,
    layers,
  };
}

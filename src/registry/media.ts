// OCI image spec (manifest.md, image-index.md, config.md) and Docker image manifest v2
// schema 2 types, and the parser that validates manifests at the border. Docker schema 2 and
// OCI share their JSON shape; only the media types differ, so one type serves both.
import { InvalidArgument } from '../errors/index.ts';
import { isDigest, type Digest } from './digest.ts';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** The Accept header of a manifest GET: every manifest and index type we read. */
export const MANIFEST_ACCEPT = [
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
  MediaTypes.ociIndex,
  MediaTypes.dockerList,
].join(', ');

export const MANIFEST_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
]);
export const INDEX_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociIndex,
  MediaTypes.dockerList,
]);
const LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociLayer,
  MediaTypes.ociLayerGzip,
  MediaTypes.ociLayerZstd,
  MediaTypes.dockerLayerGzip,
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

export type Platform = {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
};

export type Descriptor = {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
};

export type ImageManifest = {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
};

export type ImageIndex = {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
};

export type Healthcheck = {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
};

/** The `config` object of an image config: what a container runs with. */
export type ContainerConfig = {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: Healthcheck;
  Shell?: string[];
  OnBuild?: string[] | null;
};

export type HistoryEntry = {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
};

export type ImageConfigFile = {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
};

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

function invalid(why: string): never {
  throw new InvalidArgument(`invalid manifest: ${why}`, { reason: why });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkDescriptor(d: unknown, where: string): Descriptor {
  if (!isRecord(d)) invalid(`${where} is not an object`);
  if (typeof d.mediaType !== 'string' || d.mediaType.length === 0)
    invalid(`${where}.mediaType is missing`);
  if (!isDigest(d.digest)) invalid(`${where}.digest is not a sha256 digest`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    invalid(`${where}.size is not a non-negative integer`);
  return d as unknown as Descriptor;
}

/**
 * Validates manifest bytes. The media type comes from the body's `mediaType` when present and
 * must then agree with the one the client declared (OCI distribution spec §Pushing Manifests);
 * otherwise from the declared one; otherwise from the shape.
 */
export function parseManifest(bytes: Buffer, declared?: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    invalid('not JSON');
  }
  if (!isRecord(doc)) invalid('not a JSON object');
  if (doc.schemaVersion !== 2)
    invalid('schemaVersion must be 2 (schema 1 manifests are not supported)');
  const declaredType = declared?.split(';')[0]?.trim() || undefined;
  const bodyType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (
    bodyType &&
    declaredType &&
    bodyType !== declaredType &&
    declaredType !== 'application/json' &&
    declaredType !== 'application/octet-stream'
  ) {
    invalid(`Content-Type ${declaredType} does not match the manifest's mediaType ${bodyType}`);
  }
  const mediaType =
    bodyType ??
    (declaredType && (MANIFEST_TYPES.has(declaredType) || INDEX_TYPES.has(declaredType))
      ? declaredType
      : undefined) ??
    (Array.isArray(doc.manifests) ? MediaTypes.ociIndex : MediaTypes.ociManifest);
  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) invalid('index has no manifests array');
    doc.manifests.forEach((m, i) => checkDescriptor(m, `manifests[${i}]`));
    return { kind: 'index', mediaType, index: doc as unknown as ImageIndex };
  }
  if (!MANIFEST_TYPES.has(mediaType)) invalid(`unsupported media type ${mediaType}`);
  checkDescriptor(doc.config, 'config');
  if (!Array.isArray(doc.layers)) invalid('layers is not an array');
  doc.layers.forEach((l, i) => checkDescriptor(l, `layers[${i}]`));
  if (doc.subject !== undefined) checkDescriptor(doc.subject, 'subject');
  return { kind: 'manifest', mediaType, manifest: doc as unknown as ImageManifest };
}

export function isLayerMediaType(mediaType: string): boolean {
  return LAYER_TYPES.has(mediaType);
}

/** Parses and checks an image config blob (config.md): platform and rootfs.diff_ids. */
export function parseImageConfig(bytes: Buffer): ImageConfigFile {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidArgument('invalid image config: not JSON');
  }
  if (!isRecord(doc)) throw new InvalidArgument('invalid image config: not a JSON object');
  const rootfs = doc.rootfs;
  if (!isRecord(rootfs) || !Array.isArray(rootfs.diff_ids) || !rootfs.diff_ids.every(isDigest)) {
    throw new InvalidArgument(
      'invalid image config: rootfs.diff_ids must be a list of sha256 digests',
    );
  }
  if (doc.config !== undefined && doc.config !== null && !isRecord(doc.config))
    throw new InvalidArgument('invalid image config: config is not an object');
  return doc as unknown as ImageConfigFile;
}

/** Host platform in OCI terms (image-index.md §Platform Variants). */
export function hostPlatform(): Platform {
  const arch =
    (
      {
        x64: 'amd64',
        arm64: 'arm64',
        arm: 'arm',
        ia32: '386',
        ppc64: 'ppc64le',
        s390x: 's390x',
        riscv64: 'riscv64',
      } as Record<string, string>
    )[process.arch] ?? process.arch;
  return { architecture: arch, os: 'linux' };
}

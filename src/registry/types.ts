// The store's public types. Kept apart from the implementation so the registry server,
// client and import/export modules depend on the interface, not on each other.
import type { Readable } from 'node:stream';
import type { Digest } from './digest.ts';
import type {
  ContainerConfig,
  HistoryEntry,
  ImageConfigFile,
  ImageManifest,
  Platform,
} from './media.ts';
import type { ImageRef } from './ref.ts';
import type { StoredManifest } from './manifests.ts';
import type { BlobRange } from './blobs.ts';
import type { UploadArea } from './uploads.ts';

export type ImageLayer = { digest: Digest; diffId: Digest; size: number; mediaType?: string };

export type Image = {
  /** The canonical reference the image was resolved from, e.g. `library/node:22`. */
  ref: string;
  repository: string;
  /** Digest of the platform manifest (not of an index that led to it). */
  digest: Digest;
  manifest: ImageManifest;
  configDigest: Digest;
  configFile: ImageConfigFile;
  /** The container config: Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, … */
  config: ContainerConfig;
  /** Bottom layer first (manifest order). */
  layers: ImageLayer[];
  platform: Platform;
};

export type CommitOptions = {
  repo: string;
  tag: string;
  base: Image | null;
  newLayers: ImageLayer[];
  config: ContainerConfig;
  /** One entry per new layer plus any empty_layer entries; generated when absent. */
  history?: HistoryEntry[];
  /** RFC 3339; defaults to SOURCE_DATE_EPOCH when set, else now. */
  created?: string;
};

export type GcOptions = {
  /** Image refs or manifest digests to keep besides every tag (releases, running containers). */
  keep?: Iterable<string>;
  /** Extra blob digests to keep (e.g. the build cache's layers). */
  keepBlobs?: Iterable<string>;
  dryRun?: boolean;
  /** Blobs younger than this are kept: an upload or build may be about to reference them. */
  graceMs?: number;
  /** When false, manifests without a tag that nothing keeps stay (default: removed). */
  deleteUntagged?: boolean;
  /** `repo:tag`s that count as already deleted: a dry run of a GC that untags them first. */
  assumeUntagged?: Iterable<string>;
};

export type GcReport = {
  dryRun: boolean;
  freedBytes: number;
  blobs: { digest: Digest; size: number }[];
  layers: { digest: Digest; size: number }[];
  manifests: { repository: string; digest: Digest }[];
};

export type ImageSummary = { ref: string; digest: Digest; size: number; created: string | null };

/** A registry the store can fall back to when an image is missing (an operator's mirror). */
export interface ImageSource {
  readonly description: string;
  pull(store: ImageStore, ref: ImageRef): Promise<Image>;
}

export interface ImageStore {
  readonly dataDir: string;
  /** Blob upload sessions of the registry server. */
  readonly uploads: UploadArea;
  putBlob(
    source: Readable | Buffer,
    expectedDigest?: string,
  ): Promise<{ digest: Digest; size: number }>;
  hasBlob(digest: string): Promise<boolean>;
  blobSize(digest: string): Promise<number | null>;
  openBlob(digest: string, range?: BlobRange): Promise<Readable>;
  readBlob(digest: string, maxBytes?: number): Promise<Buffer>;
  blobPath(digest: string): string;
  /** A fresh path in the store's tmp dir (swept on open when its writer is gone). */
  tmpFile(label: string): string;
  /** Moves a file whose sha256 the caller verified to be `digest` into the blob store. */
  adoptBlob(tmpFile: string, digest: string): Promise<void>;
  /** Removes a blob (a failed pull's own downloads); true when there was one. */
  deleteBlob(digest: string): Promise<boolean>;

  putManifest(repo: string, reference: string, bytes: Buffer, mediaType?: string): Promise<Digest>;
  getManifest(repo: string, reference: string): Promise<StoredManifest>;
  /** The manifest an image reference names (with `library/` fallback to app repos). */
  findManifest(ref: string | ImageRef): Promise<StoredManifest & { repository: string }>;
  deleteManifest(repo: string, reference: string): Promise<void>;
  tag(repo: string, tag: string, digest: string): Promise<void>;
  tags(repo: string): Promise<string[]>;
  repositories(): Promise<string[]>;
  /** Repository-scoped access to blobs (what a registry client may read or mount from `repo`). */
  linkBlob(repo: string, digest: string): Promise<void>;
  hasBlobLink(repo: string, digest: string): Promise<boolean>;
  unlinkBlob(repo: string, digest: string): Promise<boolean>;
  images(): Promise<ImageSummary[]>;

  resolveImage(ref: string | ImageRef): Promise<Image>;
  /**
   * The image for a FROM: the local tag when there is one (base images we build, images
   * pulled before), else pulled from its registry once (Docker Hub and its mirrors for short
   * names). Progress lines (`Pulling node:26-alpine: 3/5 layers, 41 MB`) go to `onProgress`.
   */
  ensureImage(ref: string | ImageRef, options?: EnsureOptions): Promise<Image>;
  /** `paas images:pull`: fetches `ref` from its registry now, refreshing a tag. */
  pullImage(ref: string | ImageRef, options?: EnsureOptions): Promise<Image>;
  /** Registry pulls: credentials, pull records. */
  readonly puller: Pulls;
  /** Unpacked layer directories, TOPMOST FIRST (overlayfs lowerdir order). */
  layerDirs(image: Image): Promise<string[]>;
  diffToLayer(upperDir: string, options?: { adopt?: boolean; mtime?: Date }): Promise<ImageLayer>;
  commitImage(options: CommitOptions): Promise<Image>;

  /** `paas images:import`: an OCI layout dir or tar, or a docker save archive, detected. */
  importImage(path: string, tags?: string[]): Promise<Image[]>;
  importOciLayout(dir: string, tags?: string[]): Promise<Image[]>;
  exportOciLayout(ref: string, dir: string): Promise<void>;
  importDockerArchive(file: string): Promise<Image[]>;
  exportDockerArchive(ref: string, file: string): Promise<void>;
  importRootfs(dir: string, ref: string, config: ContainerConfig): Promise<Image>;

  gc(options?: GcOptions): Promise<GcReport>;
}

export type EnsureOptions = { onProgress?: (line: string) => void };

export type RegistryCredential = { username: string; password: string };

/** What a pull left in `<images>/pulled/`: which local tag came from where (images GC reads it). */
export type PulledRecord = {
  /** The reference as pulled, e.g. `library/python:3.12-slim`, `127.0.0.1:5000/team/base:1`. */
  ref: string;
  /** The local repository it is stored under (see ref.ts `localRepo`). */
  repository: string;
  tag: string | null;
  /** The digest asked for (a tag's index or manifest digest, or the ref's own digest). */
  reference: string;
  /** The platform manifest kept in the store. */
  digest: Digest;
  registry: string;
  pulledAt: string;
};

/** The store's registry side: credentials (`registry:login`) and the records of pulls. */
export interface Pulls {
  login(host: string, cred: RegistryCredential): Promise<void>;
  logout(host: string): Promise<boolean>;
  records(): Promise<(PulledRecord & { file: string })[]>;
  /** Forgets a record (GC untagged its image). */
  forget(file: string): Promise<void>;
}

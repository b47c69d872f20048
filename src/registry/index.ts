// Public surface of the image store, layers, registry server and client (issue 4). The
// builder, daemon and deploy code use exactly this; the files behind it are private.
export { openStore, type StoreOptions } from './store.ts';
export type {
  Image,
  ImageLayer,
  ImageStore,
  CommitOptions,
  GcOptions,
  GcReport,
  ImageSummary,
  ImageSource,
  EnsureOptions,
  PulledRecord,
  Pulls,
  RegistryCredential,
} from './types.ts';
export type { PullerOptions } from './pull.ts';
export type { StoredManifest } from './manifests.ts';
export {
  parseImageRef,
  parseRepoName,
  parseTag,
  formatImageRef,
  displayRef,
  parseRegistryHost,
  type ImageRef,
  type RepoName,
  type Tag,
} from './ref.ts';
export { parseDigest, isDigest, type Digest } from './digest.ts';
export {
  MediaTypes,
  type ContainerConfig,
  type Healthcheck,
  type ImageConfigFile,
  type ImageManifest,
  type ImageIndex,
  type Descriptor,
} from './media.ts';
export { unpackLayer } from './layercache.ts';
export { DEFAULT_LAYER_LIMITS, type LayerLimits } from './unpack.ts';
export { formatGcReport } from './gc.ts';
export { createRegistryHandler, basicAuthPassword, type RegistryHandlerOptions } from './server.ts';
export { RegistryClient, type RegistryClientOptions } from './client.ts';

// Public surface of the in-root path resolver (openat2 RESOLVE_IN_ROOT semantics) and the
// symlink-safe *at() helpers that write inside a root. Depends on nothing but errors, so the
// builder, the runtime and the registry can all use it.
export {
  at,
  close,
  createFileAt,
  lstatAt,
  mkdirAt,
  O_CREATE_NEW,
  openDir,
  openDirAt,
  openNoFollowAt,
  openPathAt,
  removeAt,
  rmdirAt,
  symlinkAt,
  unlinkAt,
} from './at.ts';
export { hostRoot, hostRootSync, isOpaque, isWhiteout, LayerStack, type Lookup } from './layers.ts';
export {
  MAX_SYMLINKS,
  resolveInRoot,
  resolveInRootSync,
  type Resolution,
  type ResolveOptions,
  type Root,
  type SyncRoot,
} from './resolve.ts';

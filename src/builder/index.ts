// Public surface of the Dockerfile builder: parse + execute a Dockerfile into an image in the
// store, with a content-addressed layer cache (issue 4).
export { build, type BuildOptions, type BuildResult, type BuildStep } from './builder.ts';
export { BuildCache } from './cache.ts';
export {
  DEFAULT_BUILD_MEMORY,
  defaultBuildLimits,
  parseBuildLimits,
  parseDuration,
  type BuildLimits,
} from './limits.ts';
export { DEFAULT_MAX_CONTEXT_BYTES } from './context.ts';
export { caEnv, HOST_CA_BUNDLE } from './run.ts';
export { CA_TARGET } from './view.ts';

// Public surface of the Dockerfile builder: parse + execute a Dockerfile into an image in the
// store, with a content-addressed layer cache (issue 4). The executor (builder.ts: the
// Dockerfile parser, layers, RUN containers, ~20 files) loads at the first build, not with
// the daemon that imports this surface at start for its limits and may never build
// (test/lazy-imports.test.ts fails if it is imported eagerly again).
import type { BuildOptions, BuildResult } from './builder.ts';

export type { BuildOptions, BuildResult, BuildStep } from './builder.ts';
export { BuildCache } from './cache.ts';
export {
  DEFAULT_BUILD_MEMORY,
  DEFAULT_MAX_CONTEXT_BYTES,
  defaultBuildLimits,
  parseBuildLimits,
  parseDuration,
  type BuildLimits,
} from './limits.ts';
export { caEnv, CA_TARGET, HOST_CA_BUNDLE } from './ca.ts';

/** Builds `opts.contextDir` into an image in the store (builder.ts). */
export async function build(opts: BuildOptions): Promise<BuildResult> {
  const executor = await import('./builder.ts');
  return executor.build(opts);
}

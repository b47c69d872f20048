// The build context: the source tree a build may read, minus what `.dockerignore` excludes
// (Docker's matching rules, via @balena/dockerignore). The context is measured before
// anything runs so an oversized push fails fast, and it is never read through a symlink
// that leads outside it.
import { createRequire } from 'node:module';
import type dockerignore from '@balena/dockerignore';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgument, PayloadTooLarge } from '../errors/index.ts';
import { DEFAULT_MAX_CONTEXT_BYTES } from './limits.ts';

// The package is CommonJS (`module.exports = factory`) but its types declare an ES default
// export; require hands us the function. Loaded by the first build, not with the daemon.
const loadDockerignore = (): typeof dockerignore.default =>
  createRequire(import.meta.url)('@balena/dockerignore') as typeof dockerignore.default;

/** A tree COPY reads from: the context, or the root of a stage or image (`--from`). */
export type SourceTree = {
  root: string;
  /** `build context` or `stage "build"`: used in messages. */
  label: string;
  /** False for paths excluded by .dockerignore. */
  included(rel: string): boolean;
  /** Context: a symlink leading outside is refused. Stage roots: links resolve as in a chroot. */
  symlinks: 'refuse-escape' | 'chroot';
  /** Whether excluded directories must still be walked (`!exception` patterns exist). */
  descendExcluded: boolean;
};

export type Context = SourceTree & { bytes: number; files: number };

function humanBytes(n: number): string {
  return n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${n} bytes`;
}

/**
 * Opens `dir` as a build context: reads .dockerignore and totals the included files'
 * sizes. Throws PayloadTooLarge past `maxBytes`.
 */
export async function openContext(
  dir: string,
  maxBytes = DEFAULT_MAX_CONTEXT_BYTES,
): Promise<Context> {
  const root = path.resolve(dir);
  const st = await fsp.stat(root).catch(() => null);
  if (st === null || !st.isDirectory())
    throw new InvalidArgument(`build context ${root} is not a directory`, { contextDir: root });
  const text = await fsp.readFile(path.join(root, '.dockerignore'), 'utf8').catch(() => '');
  const patterns = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const ignore = loadDockerignore();
  const ig = ignore().add(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith('!'));
  const included = (rel: string): boolean => rel === '' || !ig.ignores(rel);

  let bytes = 0;
  let files = 0;
  const walk = async (rel: string): Promise<void> => {
    const entries = await fsp.readdir(rel === '' ? root : path.join(root, rel), {
      withFileTypes: true,
    });
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const inc = included(r);
      if (e.isDirectory()) {
        // An excluded directory may still hold `!exception` files.
        if (inc || hasExceptions) await walk(r);
        continue;
      }
      if (!inc) continue;
      files++;
      if (e.isFile()) bytes += (await fsp.lstat(path.join(root, r))).size;
      if (bytes > maxBytes) {
        throw new PayloadTooLarge(
          `build context is larger than the ${humanBytes(maxBytes)} limit (at ${r}); exclude what the build does not need in .dockerignore`,
          { limit: maxBytes },
        );
      }
    }
  };
  await walk('');
  return {
    root,
    label: 'build context',
    included,
    symlinks: 'refuse-escape',
    descendExcluded: hasExceptions,
    bytes,
    files,
  };
}

/** A stage's or image's root filesystem as a COPY --from source. */
export function rootTree(root: string, label: string): SourceTree {
  return { root, label, included: () => true, symlinks: 'chroot', descendExcluded: false };
}

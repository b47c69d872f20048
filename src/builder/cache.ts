// The build cache: `<dataDir>/build/cache/<kk>/<key>.json`, one file per step key, mapping
// the key to the layer it produced (or none) and when. A key is a hash of the parent key,
// the instruction after substitution, the build args in scope and the content hash of every
// input file (ARCHITECTURE.md: builds are cached by content, never by mtime). Entries are
// written to a tmp file and renamed, so concurrent builds only ever see whole entries.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ImageLayer, ImageStore } from '../registry/index.ts';

export type CacheEntry = {
  key: string;
  /** null for a step that changed nothing on disk (e.g. WORKDIR of an existing directory). */
  layer: ImageLayer | null;
  created: string;
  createdBy: string;
  /** The FROM image's manifest digest: images GC keeps a pulled base while entries use it. */
  base?: string | null;
};

export type KeyParts = {
  parent: string;
  /** The instruction after variable substitution. */
  instruction: string;
  /** Build args in scope with their values. */
  args: ReadonlyMap<string, string>;
  /** Content hash of the step's input files (COPY/ADD), or of the stage/image they come from. */
  inputs?: string;
};

export function stepKey(p: KeyParts): string {
  const args = [...p.args].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256')
    .update(JSON.stringify(['paas-build-v1', p.parent, p.instruction, args, p.inputs ?? null]))
    .digest('hex');
}

export function rootKey(from: string): string {
  return createHash('sha256').update(`paas-build-v1 FROM ${from}`).digest('hex');
}

export class BuildCache {
  readonly dir: string;
  private readonly tmpDir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'build', 'cache');
    this.tmpDir = path.join(dataDir, 'build', 'tmp');
  }

  private file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The entry for `key` when its layer blob is still in the store (GC may have freed it). */
  async get(key: string, store: ImageStore): Promise<CacheEntry | null> {
    let entry: CacheEntry;
    try {
      entry = JSON.parse(await fsp.readFile(this.file(key), 'utf8')) as CacheEntry;
    } catch {
      return null;
    }
    if (entry.key !== key) return null;
    if (entry.layer !== null && !(await store.hasBlob(entry.layer.digest))) return null;
    return entry;
  }

  async put(entry: CacheEntry): Promise<void> {
    const file = this.file(entry.key);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const tmp = path.join(
      this.tmpDir,
      `${process.pid}-${randomBytes(6).toString('hex')}-cache.json`,
    );
    await fsp.writeFile(tmp, JSON.stringify(entry));
    await fsp.rename(tmp, file);
  }

  /** Layer digests the cache refers to: what image GC must keep (`keepBlobs`). */
  async layerDigests(): Promise<string[]> {
    return (await this.refs()).layers;
  }

  /** Base image digests the cache's entries were built on (pulled images GC keeps). */
  async baseDigests(): Promise<string[]> {
    return (await this.refs()).bases;
  }

  private async refs(): Promise<{ layers: string[]; bases: string[] }> {
    const out: string[] = [];
    const bases = new Set<string>();
    for (const sub of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      for (const name of await fsp.readdir(path.join(this.dir, sub)).catch(() => [] as string[])) {
        try {
          const e = JSON.parse(
            await fsp.readFile(path.join(this.dir, sub, name), 'utf8'),
          ) as CacheEntry;
          if (e.layer) out.push(e.layer.digest);
          if (typeof e.base === 'string') bases.add(e.base);
        } catch {
          // A torn or foreign file is not an entry.
        }
      }
    }
    return { layers: out, bases: [...bases] };
  }
}

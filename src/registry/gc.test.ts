import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from './digest.ts';
import { formatGcReport, openStore, type Image, type ImageStore } from './index.ts';
import { makeTar, tempDir } from './testing.ts';

let t: ReturnType<typeof tempDir>;
let store: ImageStore;

beforeEach(async () => {
  t = tempDir('gc');
  store = await openStore(path.join(t.dir, 'data'));
});
afterEach(async () => {
  await t.cleanup();
});

async function image(repo: string, tag: string, base: Image | null, body: string): Promise<Image> {
  const entries = [{ path: `${repo}-${tag}.txt`, body }];
  const { digest, size } = await store.putBlob(makeTar(entries));
  const img = await store.commitImage({
    repo,
    tag,
    base,
    newLayers: [{ digest, size, diffId: sha256(makeTar(entries, false)) }],
    config: {},
  });
  await store.layerDirs(img);
  return img;
}

const exists = (p: string) => fs.existsSync(p);

describe('gc', () => {
  it('frees what nothing references and keeps what tags, the keep list and keep-sets use', async () => {
    const base = await image('library/base', '1', null, 'base');
    const current = await image('app', 'v2', base, 'current');
    const release = await image('app', 'v1', base, 'old release');
    const orphan = await image('app', 'tmp', base, 'orphan');
    const cached = await store.putBlob(Buffer.from('build cache layer'));
    const stray = await store.putBlob(Buffer.from('stray upload'));
    await store.deleteManifest('app', 'v1');
    await store.deleteManifest('app', 'tmp');
    const orphanLayer = orphan.layers[1]!.digest;
    const releaseLayer = release.layers[1]!.digest;

    const dry = await store.gc({
      dryRun: true,
      graceMs: 0,
      keep: ['app@' + release.digest],
      keepBlobs: [cached.digest],
    });
    expect(dry.dryRun).toBe(true);
    expect(dry.blobs.map((b) => b.digest).sort()).toEqual(
      [orphan.digest, orphan.configDigest, orphanLayer, stray.digest].sort(),
    );
    expect(dry.layers.map((l) => l.digest)).toEqual([orphanLayer]);
    expect(dry.freedBytes).toBeGreaterThan(0);
    expect(formatGcReport(dry).at(-1)).toMatch(/^would free \d+\.\d MB$/);
    // A dry run frees nothing.
    for (const d of [orphan.digest, orphanLayer, stray.digest])
      expect(await store.hasBlob(d)).toBe(true);
    expect(exists(store.blobPath(orphanLayer).replace('/blobs/sha256/', '/layers/'))).toBe(true);

    const real = await store.gc({
      graceMs: 0,
      keep: ['app@' + release.digest],
      keepBlobs: [cached.digest],
    });
    expect(real.blobs.map((b) => b.digest).sort()).toEqual(dry.blobs.map((b) => b.digest).sort());
    expect(real.freedBytes).toBe(dry.freedBytes);
    for (const d of [orphan.digest, orphanLayer, stray.digest])
      expect(await store.hasBlob(d)).toBe(false);
    expect(exists(store.blobPath(orphanLayer).replace('/blobs/sha256/', '/layers/'))).toBe(false);
    expect(await store.hasBlob(cached.digest)).toBe(true);
    expect(await store.hasBlob(releaseLayer)).toBe(true);
    expect(exists(store.blobPath(releaseLayer).replace('/blobs/sha256/', '/layers/'))).toBe(true);
    expect((await store.resolveImage('app:v2')).digest).toBe(current.digest);
    expect((await store.resolveImage(`app@${release.digest}`)).digest).toBe(release.digest);
    expect((await store.layerDirs(current)).length).toBe(2);

    // Without the keep list the old release goes too; a second run finds nothing.
    const later = await store.gc({ graceMs: 0 });
    expect(later.blobs.map((b) => b.digest)).toEqual(
      expect.arrayContaining([release.digest, releaseLayer, cached.digest]),
    );
    expect((await store.gc({ graceMs: 0 })).freedBytes).toBe(0);
    expect((await store.resolveImage('base:1')).digest).toBe(base.digest);
  });

  it('a dry run with tags assumed gone reports what the run that first deletes them frees', async () => {
    const base = await image('library/base', '1', null, 'base');
    await image('app', 'v2', base, 'current');
    const old = await image('app', 'v1', base, 'old release');
    const dry = await store.gc({ dryRun: true, graceMs: 0, assumeUntagged: ['app:v1'] });
    expect(dry.blobs.map((b) => b.digest)).toEqual(
      expect.arrayContaining([old.digest, old.layers[1]!.digest]),
    );
    expect((await store.resolveImage('app:v1')).digest).toBe(old.digest);
    await store.deleteManifest('app', 'v1');
    const real = await store.gc({ graceMs: 0 });
    expect(real.blobs.map((b) => b.digest).sort()).toEqual(dry.blobs.map((b) => b.digest).sort());
    expect(real.freedBytes).toBe(dry.freedBytes);
  });

  it('spares blobs younger than the grace period', async () => {
    const fresh = await store.putBlob(Buffer.from('just uploaded'));
    const r = await store.gc({});
    expect(r.blobs).toEqual([]);
    expect(await store.hasBlob(fresh.digest)).toBe(true);
  });
});

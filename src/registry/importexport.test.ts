// Import/export round trips, checked against skopeo reading and writing the same formats.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from './digest.ts';
import { openStore, type Image, type ImageStore } from './index.ts';
import { makeTar, tempDir } from './testing.ts';

const run = promisify(execFile);
let t: ReturnType<typeof tempDir>;
let src: ImageStore;
let img: Image;

beforeEach(async () => {
  t = tempDir('impexp');
  src = await openStore(path.join(t.dir, 'src'));
  const layers = [];
  for (const files of [{ 'etc/a': 'a' }, { 'srv/b': 'b'.repeat(10_000), '.wh.gone': '' }]) {
    const entries = Object.entries(files).map(([p, body]) => ({ path: p, body }));
    const { digest, size } = await src.putBlob(makeTar(entries));
    layers.push({ digest, size, diffId: sha256(makeTar(entries, false)) });
  }
  img = await src.commitImage({
    repo: 'team/web',
    tag: 'v1',
    base: null,
    newLayers: layers,
    config: { Cmd: ['run'], WorkingDir: '/srv' },
  });
});
afterEach(async () => {
  await t.cleanup();
});

describe('OCI layout', () => {
  it('exports and imports with identical digests, and reads what skopeo writes', async () => {
    const layout = path.join(t.dir, 'layout');
    await src.exportOciLayout('team/web:v1', layout);
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    expect(index.manifests[0]?.digest).toBe(img.digest);
    expect(index.manifests[0]?.annotations['org.opencontainers.image.ref.name']).toBe('v1');

    const dst = await openStore(path.join(t.dir, 'dst'));
    const [imported] = await dst.importOciLayout(layout);
    expect(imported?.digest).toBe(img.digest);
    expect(imported?.ref).toBe('team/web:v1');
    expect((await dst.resolveImage('team/web:v1')).config.WorkingDir).toBe('/srv');

    // skopeo's own layout names only the tag, so the caller supplies the name.
    const viaSkopeo = path.join(t.dir, 'skopeo-layout');
    await run('skopeo', ['copy', `oci:${layout}:v1`, `oci:${viaSkopeo}:latest`]);
    await expect(dst.importOciLayout(viaSkopeo)).rejects.toThrow(/names only the tag "latest"/);
    const [renamed] = await dst.importOciLayout(viaSkopeo, ['copied:one', 'copied:two']);
    expect(renamed?.digest).toBe(img.digest);
    expect(await dst.tags('library/copied')).toEqual(['one', 'two']);
  });

  it('refuses a layout whose blob does not match its digest', async () => {
    const layout = path.join(t.dir, 'layout');
    await src.exportOciLayout('team/web:v1', layout);
    const victim = path.join(layout, 'blobs/sha256', img.layers[1]?.digest.slice(7) as string);
    fs.writeFileSync(victim, 'tampered');
    const dst = await openStore(path.join(t.dir, 'dst'));
    await expect(dst.importOciLayout(layout)).rejects.toThrow(/digest mismatch/);
    await expect(dst.resolveImage('team/web:v1')).rejects.toThrow(/not found/);
  });
});

describe('docker save archives', () => {
  it('round-trips through our export and import, and through skopeo both ways', async () => {
    const archive = path.join(t.dir, 'web.tar');
    await src.exportDockerArchive('team/web:v1', archive);
    const dst = await openStore(path.join(t.dir, 'dst'));
    const [back] = await dst.importDockerArchive(archive);
    // Layers travel uncompressed in docker archives: the config (and so diff_ids) is identical.
    expect(back?.configDigest).toBe(img.configDigest);
    expect(back?.layers.map((l) => l.diffId)).toEqual(img.layers.map((l) => l.diffId));
    expect(back?.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => l.diffId));
    const dirs = await dst.layerDirs(back as Image);
    expect(fs.readFileSync(path.join(dirs[0] as string, 'srv/b'), 'utf8')).toHaveLength(10_000);

    // skopeo reads our archive…
    const layout = path.join(t.dir, 'from-archive');
    await run('skopeo', ['copy', `docker-archive:${archive}`, `oci:${layout}:x`]);
    const cfg = JSON.parse(
      (await run('skopeo', ['inspect', '--config', `oci:${layout}:x`])).stdout,
    ) as { config: { Cmd: string[] } };
    expect(cfg.config.Cmd).toEqual(['run']);
    // …and we read skopeo's.
    const theirs = path.join(t.dir, 'skopeo.tar');
    const srcLayout = path.join(t.dir, 'src-layout');
    await src.exportOciLayout('team/web:v1', srcLayout);
    await run('skopeo', [
      'copy',
      `oci:${srcLayout}:v1`,
      `docker-archive:${theirs}:team/web:fromskopeo`,
    ]);
    const [fromSkopeo] = await dst.importDockerArchive(theirs);
    expect(fromSkopeo?.ref).toBe('team/web:fromskopeo');
    expect(fromSkopeo?.layers.map((l) => l.diffId)).toEqual(img.layers.map((l) => l.diffId));
  });

  it('refuses an archive whose layer does not match the config diff_id', async () => {
    const staging = path.join(t.dir, 'evil');
    fs.mkdirSync(path.join(staging, 'l'), { recursive: true });
    const config = {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [sha256('something else')] },
    };
    fs.writeFileSync(path.join(staging, 'c.json'), JSON.stringify(config));
    fs.writeFileSync(path.join(staging, 'l/layer.tar'), makeTar([{ path: 'x', body: 'y' }], false));
    fs.writeFileSync(
      path.join(staging, 'manifest.json'),
      JSON.stringify([{ Config: 'c.json', RepoTags: ['evil:1'], Layers: ['l/layer.tar'] }]),
    );
    const archive = path.join(t.dir, 'evil.tar');
    await run('tar', ['-cf', archive, '-C', staging, '.']);
    const dst = await openStore(path.join(t.dir, 'dst'));
    await expect(dst.importDockerArchive(archive)).rejects.toThrow(/digest mismatch/);
    await expect(dst.resolveImage('evil:1')).rejects.toThrow(/not found/);
  });
});

describe('importImage', () => {
  it('recognises an OCI layout dir, an OCI archive and a docker archive', async () => {
    const layout = path.join(t.dir, 'layout');
    await src.exportOciLayout('team/web:v1', layout);
    const ociArchive = path.join(t.dir, 'oci.tar');
    await run('skopeo', ['copy', `oci:${layout}:v1`, `oci-archive:${ociArchive}:v1`]);
    const dockerArchive = path.join(t.dir, 'docker.tar');
    await src.exportDockerArchive('team/web:v1', dockerArchive);
    const dst = await openStore(path.join(t.dir, 'dst'));
    expect((await dst.importImage(layout))[0]?.digest).toBe(img.digest);
    expect((await dst.importImage(ociArchive, ['from-oci:1']))[0]?.digest).toBe(img.digest);
    const [fromDocker] = await dst.importImage(dockerArchive, ['from-docker:1']);
    expect(fromDocker?.ref).toBe('library/from-docker:1');
    expect(fromDocker?.configDigest).toBe(img.configDigest);
    fs.writeFileSync(path.join(t.dir, 'junk'), 'not an archive');
    await expect(dst.importImage(path.join(t.dir, 'junk'))).rejects.toThrow(
      /not a tar archive|neither/,
    );
  });
});

describe('importRootfs', () => {
  it('packs a root directory into a one-layer image, skipping device nodes', async () => {
    const root = path.join(t.dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(root, 'dev'));
    fs.writeFileSync(path.join(root, 'bin/hello'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await run('mknod', [path.join(root, 'dev/null'), 'c', '1', '3']);
    const a = await src.importRootfs(root, 'base:1', { Cmd: ['/bin/hello'] });
    const b = await src.importRootfs(root, 'base:2', { Cmd: ['/bin/hello'] });
    expect(b.digest).toBe(a.digest);
    const [dir] = await src.layerDirs(a);
    expect(fs.statSync(path.join(dir as string, 'bin/hello')).mode & 0o777).toBe(0o755);
    expect(fs.existsSync(path.join(dir as string, 'dev'))).toBe(true);
    expect(fs.existsSync(path.join(dir as string, 'dev/null'))).toBe(false);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFound, ImageNotFound, InvalidArgument, InvalidImageRef } from '../errors/index.ts';
import { sha256 } from './digest.ts';
import { MediaTypes, openStore, type ImageStore } from './index.ts';
import { makeTar, tempDir } from './testing.ts';

let t: ReturnType<typeof tempDir>;
let store: ImageStore;
let dataDir: string;

beforeEach(async () => {
  t = tempDir('store');
  dataDir = path.join(t.dir, 'data');
  store = await openStore(dataDir);
});
afterEach(async () => {
  await t.cleanup();
});

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += (c as Buffer).toString();
  return s;
}

async function layer(files: Record<string, string>) {
  const blob = makeTar(Object.entries(files).map(([p, body]) => ({ path: p, body })));
  const { digest, size } = await store.putBlob(blob);
  return {
    digest,
    diffId: sha256(
      makeTar(
        Object.entries(files).map(([p, body]) => ({ path: p, body })),
        false,
      ),
    ),
    size,
  };
}

describe('blobs', () => {
  it('stores by content digest and verifies an expected digest', async () => {
    const data = Buffer.from('hello blob');
    const { digest, size } = await store.putBlob(Readable.from([data]));
    expect(digest).toBe(sha256(data));
    expect(size).toBe(data.length);
    expect(await store.hasBlob(digest)).toBe(true);
    expect(
      fs.readFileSync(path.join(dataDir, 'images/blobs/sha256', digest.slice(7)), 'utf8'),
    ).toBe('hello blob');
    expect(await text(await store.openBlob(digest, { start: 6, end: 9 }))).toBe('blob');
    expect(await store.putBlob(data, digest)).toEqual({ digest, size });
  });

  it('refuses content that does not match the expected digest and keeps nothing', async () => {
    const wrong = sha256('something else');
    await expect(store.putBlob(Readable.from([Buffer.from('data')]), wrong)).rejects.toThrow(
      /digest mismatch/,
    );
    await expect(store.putBlob(Buffer.from('data'), wrong)).rejects.toThrow(InvalidArgument);
    expect(await store.hasBlob(wrong)).toBe(false);
    expect(fs.readdirSync(path.join(dataDir, 'images/blobs/sha256'))).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'images/tmp'))).toEqual([]);
    await expect(store.openBlob(wrong)).rejects.toThrow(BlobNotFound);
  });

  it('sweeps tmp files left by a dead writer on open', async () => {
    const stale = path.join(dataDir, 'images/tmp', '999999999-abc-blob');
    fs.writeFileSync(stale, 'half');
    await openStore(dataDir);
    expect(fs.existsSync(stale)).toBe(false);
  });
});

describe('manifests and tags', () => {
  it('stores manifests by tag and digest, lists tags and repositories, deletes', async () => {
    const l = await layer({ 'hello.txt': 'hi' });
    const img = await store.commitImage({
      repo: 'team/app',
      tag: 'v1',
      base: null,
      newLayers: [l],
      config: { Cmd: ['sh'] },
    });
    const got = await store.getManifest('team/app', 'v1');
    expect(got.digest).toBe(img.digest);
    expect(got.mediaType).toBe(MediaTypes.ociManifest);
    expect((await store.getManifest('team/app', img.digest)).bytes.equals(got.bytes)).toBe(true);
    await store.tag('team/app', 'latest', img.digest);
    await store.tag('other', 'x', img.digest);
    expect(await store.tags('team/app')).toEqual(['latest', 'v1']);
    expect(await store.repositories()).toEqual(['other', 'team/app']);
    await store.deleteManifest('team/app', 'latest');
    expect(await store.tags('team/app')).toEqual(['v1']);
    await store.deleteManifest('team/app', img.digest);
    expect(await store.tags('team/app')).toEqual([]);
    await expect(store.getManifest('team/app', img.digest)).rejects.toThrow(ImageNotFound);
    expect((await store.resolveImage('other:x')).digest).toBe(img.digest);
  });

  it('refuses manifests that reference missing blobs or do not parse', async () => {
    const missing = { mediaType: MediaTypes.ociConfig, digest: sha256('nope'), size: 4 };
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: missing,
        layers: [],
      }),
    );
    await expect(store.putManifest('app', 'v1', m)).rejects.toThrow(/not in the store/);
    await expect(store.putManifest('app', 'v1', Buffer.from('{'))).rejects.toThrow(/not JSON/);
    await expect(
      store.putManifest('app', 'v1', Buffer.from('{"schemaVersion":1}')),
    ).rejects.toThrow(/schemaVersion/);
    await expect(store.putManifest('App', 'v1', m)).rejects.toThrow(InvalidImageRef);
  });
});

describe('resolveImage, layerDirs and commitImage', () => {
  it('resolves with library/ defaulting, tags and digests; layerDirs are topmost first', async () => {
    const base = await layer({ 'etc/os': 'base', 'bin/sh': '#!' });
    const b = await store.commitImage({
      repo: 'library/busybox',
      tag: 'latest',
      base: null,
      newLayers: [base],
      config: { Cmd: ['sh'], Env: ['PATH=/bin'] },
    });
    const img = await store.resolveImage('busybox');
    expect(img.ref).toBe('library/busybox:latest');
    expect(img.config.Cmd).toEqual(['sh']);
    expect((await store.resolveImage(`busybox@${b.digest}`)).digest).toBe(b.digest);
    expect((await store.resolveImage('docker.io/library/busybox:latest')).digest).toBe(b.digest);

    const top = await layer({ 'app/index.js': 'x' });
    const app = await store.commitImage({
      repo: 'myapp',
      tag: 'v2',
      base: img,
      newLayers: [top],
      config: { ...img.config, WorkingDir: '/app', ExposedPorts: { '5000/tcp': {} } },
    });
    expect(app.layers.map((l) => l.digest)).toEqual([base.digest, top.digest]);
    expect(app.configFile.rootfs.diff_ids).toEqual([base.diffId, top.diffId]);
    // App images are single-component repos: a short name falls back from library/ to them.
    const resolved = await store.resolveImage('myapp:v2');
    expect(resolved.ref).toBe('myapp:v2');
    expect(resolved.digest).toBe(app.digest);
    const dirs = await store.layerDirs(app);
    expect(dirs).toEqual([
      path.join(dataDir, 'images/layers', top.digest.slice(7)),
      path.join(dataDir, 'images/layers', base.digest.slice(7)),
    ]);
    expect(fs.readFileSync(path.join(dirs[0] as string, 'app/index.js'), 'utf8')).toBe('x');
    expect(fs.readFileSync(path.join(dirs[1] as string, 'etc/os'), 'utf8')).toBe('base');
  }, 30_000);

  it('refuses bad refs and unknown images with a helpful message', async () => {
    await expect(store.resolveImage('Bad Ref')).rejects.toThrow(InvalidImageRef);
    // An end-of-life Node is not refused by name (issue 16): the builder has it made on demand.
    await expect(store.resolveImage('node:20')).rejects.toThrow(/library\/node:20 not found/);
    const l = await layer({ a: 'b' });
    await store.commitImage({
      repo: 'library/busybox',
      tag: 'latest',
      base: null,
      newLayers: [l],
      config: {},
    });
    const err = await store.resolveImage('nosuch:1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFound);
    expect((err as Error).message).toMatch(
      /library\/nosuch:1 not found\. Images here: library\/busybox:latest\. Pull it with `paas images:pull REF`, or add one with `paas images:import FILE`/,
    );
  });
});

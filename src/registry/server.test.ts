// The registry against real clients: skopeo pushes an OCI layout in and copies it back out
// with identical digests; raw HTTP checks the parts of the spec skopeo does not exercise.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from './digest.ts';
import {
  basicAuthPassword,
  createRegistryHandler,
  openStore,
  RegistryClient,
  type ImageStore,
} from './index.ts';
import { makeTar, tempDir } from './testing.ts';

const run = promisify(execFile);
const TOKEN = 'test-token-123';
const auth = { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` };

let t: ReturnType<typeof tempDir>;
let server: Server;
let store: ImageStore;
let base: string;
let host: string;
let srcLayout: string;
let srcDigest: string;

beforeAll(async () => {
  t = tempDir('registry');
  store = await openStore(path.join(t.dir, 'server'), { maxUploadBytes: 4 * 1024 * 1024 });
  const app = express();
  app.use(
    '/v2',
    createRegistryHandler({
      store,
      authenticate: (req) => basicAuthPassword(req) === TOKEN,
      realm: 'paas test',
    }),
  );
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  base = `http://${host}`;

  // The source image lives in a separate store and leaves it as an OCI layout, as a user would bring it.
  const src = await openStore(path.join(t.dir, 'src'));
  const layers = [];
  for (const files of [{ 'etc/hello': 'hello' }, { 'app/big.bin': 'z'.repeat(300_000) }]) {
    const blob = makeTar(Object.entries(files).map(([p, body]) => ({ path: p, body })));
    const { digest, size } = await src.putBlob(blob);
    layers.push({
      digest,
      size,
      diffId: sha256(
        makeTar(
          Object.entries(files).map(([p, body]) => ({ path: p, body })),
          false,
        ),
      ),
    });
  }
  const img = await src.commitImage({
    repo: 'app',
    tag: 'v1',
    base: null,
    newLayers: layers,
    config: { Cmd: ['/bin/sh'], Env: ['A=1'] },
  });
  srcDigest = img.digest;
  srcLayout = path.join(t.dir, 'layout');
  await src.exportOciLayout('app:v1', srcLayout);
}, 60_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await t.cleanup();
});

const skopeo = (...args: string[]) => run('skopeo', args, { timeout: 60_000 });

describe('skopeo against our registry', () => {
  it('refuses an unauthenticated push', async () => {
    const err = await skopeo(
      'copy',
      `oci:${srcLayout}:v1`,
      `docker://${host}/app:v1`,
      '--dest-tls-verify=false',
    ).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/401|unauthorized|authentication required/i);
    const res = await fetch(`${base}/v2/app/blobs/uploads/`, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="paas test"');
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'UNAUTHORIZED',
    );
  });

  it('copies an image in and back out with identical digests, and inspects it', async () => {
    await skopeo(
      'copy',
      `oci:${srcLayout}:v1`,
      `docker://${host}/app:v1`,
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${TOKEN}`,
    );
    const inspect = JSON.parse(
      (
        await skopeo(
          'inspect',
          '--tls-verify=false',
          '--creds',
          `x:${TOKEN}`,
          `docker://${host}/app:v1`,
        )
      ).stdout,
    ) as { Digest: string; Layers: string[]; Env: string[] };
    expect(inspect.Digest).toBe(srcDigest);
    expect(inspect.Layers).toHaveLength(2);
    expect(inspect.Env).toEqual(['A=1']);
    const out = path.join(t.dir, 'out');
    await skopeo(
      'copy',
      `docker://${host}/app:v1`,
      `oci:${out}:v1`,
      '--src-tls-verify=false',
      '--src-creds',
      `x:${TOKEN}`,
    );
    const index = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests[0]?.digest).toBe(srcDigest);
    const srcBlobs = fs.readdirSync(path.join(srcLayout, 'blobs/sha256')).sort();
    expect(fs.readdirSync(path.join(out, 'blobs/sha256')).sort()).toEqual(srcBlobs);
    expect((await store.resolveImage('app:v1')).digest).toBe(srcDigest);
  });
});

describe('distribution API', () => {
  const h = (extra: Record<string, string> = {}) => ({ ...auth, ...extra });

  it('does chunked uploads, checks Content-Range, and refuses a wrong digest', async () => {
    const data = Buffer.from('0123456789abcdefghij');
    const digest = sha256(data);
    const start = await fetch(`${base}/v2/chunky/blobs/uploads/`, { method: 'POST', headers: h() });
    expect(start.status).toBe(202);
    const loc = start.headers.get('location') as string;
    expect(loc).toMatch(/^\/v2\/chunky\/blobs\/uploads\//);
    const p1 = await fetch(`${base}${loc}`, {
      method: 'PATCH',
      headers: h({ 'content-range': '0-9', 'content-type': 'application/octet-stream' }),
      body: data.subarray(0, 10),
    });
    expect(p1.status).toBe(202);
    expect(p1.headers.get('range')).toBe('0-9');
    const bad = await fetch(`${base}${loc}`, {
      method: 'PATCH',
      headers: h({ 'content-range': '5-14' }),
      body: data.subarray(5, 15),
    });
    expect(bad.status).toBe(416);
    const p2 = await fetch(`${base}${loc}`, {
      method: 'PATCH',
      headers: h({ 'content-range': '10-19' }),
      body: data.subarray(10),
    });
    expect(p2.headers.get('range')).toBe('0-19');
    const wrong = await fetch(`${base}${loc}?digest=${sha256('nope')}`, {
      method: 'PUT',
      headers: h(),
    });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'DIGEST_INVALID',
    );
    const done = await fetch(`${base}${loc}?digest=${digest}`, { method: 'PUT', headers: h() });
    expect(done.status).toBe(201);
    expect(done.headers.get('docker-content-digest')).toBe(digest);
    const got = await fetch(`${base}/v2/chunky/blobs/${digest}`, { headers: h() });
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
    const range = await fetch(`${base}/v2/chunky/blobs/${digest}`, {
      headers: h({ range: 'bytes=10-13' }),
    });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe('bytes 10-13/20');
    expect(await range.text()).toBe('abcd');
    const head = await fetch(`${base}/v2/chunky/blobs/${digest}`, { method: 'HEAD', headers: h() });
    expect(head.headers.get('content-length')).toBe('20');
  });

  it('refuses a monolithic upload whose content does not match ?digest= and one past the size limit', async () => {
    const wrong = await fetch(`${base}/v2/mono/blobs/uploads/?digest=${sha256('other')}`, {
      method: 'POST',
      headers: h(),
      body: 'content',
    });
    expect(wrong.status).toBe(400);
    expect(await store.hasBlob(sha256('content'))).toBe(false);
    const ok = await fetch(`${base}/v2/mono/blobs/uploads/?digest=${sha256('content')}`, {
      method: 'POST',
      headers: h(),
      body: 'content',
    });
    expect(ok.status).toBe(201);
    const big = Buffer.alloc(5 * 1024 * 1024, 1);
    const tooBig = await fetch(`${base}/v2/mono/blobs/uploads/?digest=${sha256(big)}`, {
      method: 'POST',
      headers: h(),
      body: big,
    });
    expect(tooBig.status).toBe(413);
    expect(await store.hasBlob(sha256(big))).toBe(false);
  });

  it('mounts a blob across repositories and deletes blob links', async () => {
    const digest = sha256('content');
    const notThere = await fetch(`${base}/v2/other/blobs/${digest}`, {
      method: 'HEAD',
      headers: h(),
    });
    expect(notThere.status).toBe(404);
    const mount = await fetch(`${base}/v2/other/blobs/uploads/?mount=${digest}&from=mono`, {
      method: 'POST',
      headers: h(),
    });
    expect(mount.status).toBe(201);
    expect(mount.headers.get('location')).toBe(`/v2/other/blobs/${digest}`);
    expect((await fetch(`${base}/v2/other/blobs/${digest}`, { headers: h() })).status).toBe(200);
    // Mounting from a repository that does not hold the blob falls back to a new upload.
    const fallback = await fetch(`${base}/v2/third/blobs/uploads/?mount=${digest}&from=nosuch`, {
      method: 'POST',
      headers: h(),
    });
    expect(fallback.status).toBe(202);
    expect(
      (await fetch(`${base}/v2/other/blobs/${digest}`, { method: 'DELETE', headers: h() })).status,
    ).toBe(202);
    expect(
      (await fetch(`${base}/v2/other/blobs/${digest}`, { method: 'HEAD', headers: h() })).status,
    ).toBe(404);
    expect(
      (await fetch(`${base}/v2/mono/blobs/${digest}`, { method: 'HEAD', headers: h() })).status,
    ).toBe(200);
  });

  it('lists tags with pagination and the catalog, and deletes manifests', async () => {
    const m = await store.getManifest('app', 'v1');
    for (const tag of ['v2', 'v3']) {
      const put = await fetch(`${base}/v2/app/manifests/${tag}`, {
        method: 'PUT',
        headers: h({ 'content-type': m.mediaType }),
        body: m.bytes,
      });
      expect(put.status).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(m.digest);
    }
    const page1 = await fetch(`${base}/v2/app/tags/list?n=2`, { headers: h() });
    expect(await page1.json()).toEqual({ name: 'app', tags: ['v1', 'v2'] });
    expect(page1.headers.get('link')).toBe('</v2/app/tags/list?n=2&last=v2>; rel="next"');
    const page2 = await fetch(`${base}/v2/app/tags/list?n=2&last=v2`, { headers: h() });
    expect(await page2.json()).toEqual({ name: 'app', tags: ['v3'] });
    expect(page2.headers.get('link')).toBeNull();
    const catalog = (await (await fetch(`${base}/v2/_catalog`, { headers: h() })).json()) as {
      repositories: string[];
    };
    expect(catalog.repositories).toEqual(expect.arrayContaining(['app']));
    const head = await fetch(`${base}/v2/app/manifests/v2`, {
      method: 'HEAD',
      headers: h({ accept: m.mediaType }),
    });
    expect(head.headers.get('docker-content-digest')).toBe(m.digest);
    expect(
      (await fetch(`${base}/v2/app/manifests/v3`, { method: 'DELETE', headers: h() })).status,
    ).toBe(202);
    const gone = await fetch(`${base}/v2/app/manifests/v3`, { headers: h() });
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'MANIFEST_UNKNOWN',
    );
    const badManifest = await fetch(`${base}/v2/app/manifests/bad`, {
      method: 'PUT',
      headers: h({ 'content-type': 'application/vnd.oci.image.manifest.v1+json' }),
      body: '{"schemaVersion":2,"config":{}}',
    });
    expect(badManifest.status).toBe(400);
    expect(((await badManifest.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'MANIFEST_INVALID',
    );
    const unknownRepo = await fetch(`${base}/v2/nosuch/tags/list`, { headers: h() });
    expect(unknownRepo.status).toBe(404);
  });
});

describe('RegistryClient', () => {
  it('pulls an image from a registry into another store and pushes it to a new name', async () => {
    await store.importOciLayout(srcLayout, ['app:v1']);
    const mirror = new RegistryClient({ url: base, password: TOKEN });
    const local = await openStore(path.join(t.dir, 'client'), { mirror });
    // resolveImage falls back to the mirror for images the store lacks.
    const img = await local.resolveImage('app:v1');
    expect(img.digest).toBe(srcDigest);
    expect((await local.layerDirs(img)).length).toBe(2);
    await mirror.push(local, 'app:v1', 'pushed/app:copy');
    expect((await store.resolveImage('pushed/app:copy')).digest).toBe(srcDigest);
    const anonymous = new RegistryClient({ url: base });
    await expect(anonymous.pull(local, 'app:v1')).rejects.toThrow(/requires credentials/);
  });
});

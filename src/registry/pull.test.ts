// Pulling from real registries on loopback (issue 16): Debian's docker-registry as a Docker Hub
// mirror and as a private registry with htpasswd auth, fed by skopeo; small Node proxies in
// front of it for a token-auth registry (the real Bearer challenge flow), a tampered blob and
// a connection cut mid-layer. Docker Hub itself is unreachable here, as offline boxes are.
import { promises as fsp, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { zstdCompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRootfs } from '../../test/helpers/host.ts';
import {
  freePort,
  pushImage,
  startDockerRegistry,
  tarLayer,
  type DockerRegistry,
} from '../../test/helpers/registry.ts';
import { openStore } from './store.ts';
import { makeTar, tempDir } from './testing.ts';
import type { ImageStore } from './types.ts';

const PATH_ENV = { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] };
let mirror: DockerRegistry;
let priv: DockerRegistry;
let busybox: Buffer;
const extra = makeTar([
  { path: 'srv/', type: 'Directory' },
  { path: 'srv/hello.txt', body: 'hello from the pulled image\n' },
]);
const servers: http.Server[] = [];
const dirs: { cleanup: () => Promise<void> }[] = [];

beforeAll(async () => {
  mirror = await startDockerRegistry();
  priv = await startDockerRegistry({ user: 'team', password: 's3cret-pw' });
  busybox = await tarLayer(testRootfs());
  // A zstd layer beside a gzip one: both are what registries serve today.
  const zst = zstdCompressSync(gunzipSync(extra));
  await pushImage(`${mirror.host}/library/python:3.12-slim`, {
    layers: [busybox, zst],
    config: PATH_ENV,
    platforms: [
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'amd64' },
    ],
  });
  await pushImage(`${mirror.host}/library/small:1`, { layers: [extra], config: PATH_ENV });
  await pushImage(
    `${priv.host}/team/base:1`,
    { layers: [busybox], config: PATH_ENV },
    { creds: 'team:s3cret-pw' },
  );
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.close();
  await mirror?.stop();
  await priv?.stop();
  for (const d of dirs) await d.cleanup();
});

async function store(mirrors: string[] = []): Promise<ImageStore> {
  const t = tempDir('pull');
  dirs.push(t);
  return openStore(t.dir, { pull: { mirrors, connectTimeoutMs: 5000 } });
}

/** An HTTP proxy to `target` whose `hook` may answer a request itself. */
async function proxy(
  target: string,
  hook: (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean> = () =>
    false,
): Promise<string> {
  const server = http.createServer(async (req, res) => {
    if (await hook(req, res)) return;
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => k !== 'host') as [string, string][],
      ),
      redirect: 'manual',
    });
    const headers: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (k !== 'content-encoding' && k !== 'transfer-encoding') headers[k] = v;
    });
    res.writeHead(upstream.status, headers);
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function files(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir).catch(() => [] as string[])).sort();
}

describe('pulling through a Docker Hub mirror', () => {
  it('pulls python:3.12-slim from a multi-platform index, picks linux/amd64, and never again', async () => {
    const s = await store([mirror.url]);
    const lines: string[] = [];
    const img = await s.ensureImage('python:3.12-slim', { onProgress: (l) => lines.push(l) });
    expect(img.platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(img.layers).toHaveLength(2);
    expect(lines[0]).toBe(`Pulling python:3.12-slim from mirror ${mirror.host}`);
    expect(lines).toContain('Pulling python:3.12-slim: 0/2 layers, 0 MB');
    expect(lines.at(-1)).toMatch(/^Pulled python:3\.12-slim: 2\/2 layers, \d+ MB \(sha256:/);
    // Both the gzip and the zstd layer unpack through the safe unpacker.
    const [top] = await s.layerDirs(img);
    expect(await fsp.readFile(path.join(top!, 'srv/hello.txt'), 'utf8')).toBe(
      'hello from the pulled image\n',
    );
    // Cached under Docker Hub's name: the second resolution does not ask the registry.
    const before = mirror.requests('/v2/library/python/');
    expect(before).toBeGreaterThan(0);
    const again = await s.ensureImage('docker.io/library/python:3.12-slim');
    expect(again.digest).toBe(img.digest);
    expect(mirror.requests('/v2/library/python/')).toBe(before);
    expect((await s.images()).map((i) => i.ref)).toContain('library/python:3.12-slim');
  });

  it('images:pull refreshes a tag that moved on the registry', async () => {
    const s = await store([mirror.url]);
    const first = await s.ensureImage('small:1');
    const moved = makeTar([{ path: 'v2.txt', body: 'two' }]);
    await pushImage(`${mirror.host}/library/small:1`, { layers: [extra, moved], config: PATH_ENV });
    expect((await s.ensureImage('small:1')).digest).toBe(first.digest);
    const fresh = await s.pullImage('small:1');
    expect(fresh.digest).not.toBe(first.digest);
    expect((await s.ensureImage('small:1')).digest).toBe(fresh.digest);
  });

  it('resumes a layer with a Range request after the connection breaks', async () => {
    const ranges: string[] = [];
    let cut = false;
    const url = await proxy(mirror.url, async (req, res) => {
      if (req.headers.range) ranges.push(req.headers.range);
      if (cut || !/\/blobs\/sha256:/.test(req.url ?? '') || req.method !== 'GET') return false;
      const up = await fetch(`${mirror.url}${req.url}`);
      const body = Buffer.from(await up.arrayBuffer());
      if (body.length < 100_000) return false;
      cut = true;
      // Half the layer, then the connection drops.
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.socket?.destroy(), 50);
      return true;
    });
    const s = await store([url]);
    const img = await s.ensureImage('python:3.12-slim');
    expect(cut).toBe(true);
    expect(ranges.some((r) => /^bytes=[1-9][0-9]*-$/.test(r))).toBe(true);
    expect(await s.hasBlob(img.layers[0]!.digest)).toBe(true);
  });

  it('refuses a blob whose digest does not match, and keeps nothing of it', async () => {
    let tampered = 0;
    const url = await proxy(mirror.url, async (req, res) => {
      if (req.method !== 'GET' || !/\/blobs\/sha256:/.test(req.url ?? '')) return false;
      const up = await fetch(`${mirror.url}${req.url}`);
      const body = Buffer.from(await up.arrayBuffer());
      if (body.length < 1000) return false; // the config passes; a layer is altered
      body[body.length >> 1]! ^= 0xff;
      tampered++;
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
      return true;
    });
    const s = await store([url]);
    const err = await s.ensureImage('python:3.12-slim').then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(tampered).toBeGreaterThan(0);
    expect(err?.message).toMatch(
      /digest mismatch: expected sha256:[0-9a-f]{64}, content is sha256:/,
    );
    // No image, no tag, no layer blob, no half-written download.
    await expect(s.resolveImage('python:3.12-slim')).rejects.toThrow(/not found/);
    expect(await s.repositories()).toEqual([]);
    expect(await files(path.join(s.dataDir, 'images', 'blobs', 'sha256'))).toEqual([]);
    expect(
      (await files(path.join(s.dataDir, 'images', 'tmp'))).filter((f) => f.includes('pull')),
    ).toEqual([]);
  });
});

describe('a private registry (htpasswd Basic auth)', () => {
  it('fails clearly before registry:login, pulls after it, keeps the credentials 0600', async () => {
    const s = await store();
    const ref = `${priv.host}/team/base:1`;
    await expect(s.ensureImage(ref)).rejects.toThrow(
      new RegExp(`cannot pull ${priv.host}/team/base:1: .*${priv.host}.*requires credentials`),
    );
    await expect(
      s.puller.login(priv.host, { username: 'team', password: 'wrong' }),
    ).rejects.toThrow(/login to 127\.0\.0\.1:\d+ failed: 401 for user team/);
    const credFile = path.join(s.dataDir, 'registry-auth.json');
    expect(await fsp.stat(credFile).catch(() => null)).toBeNull();
    await s.puller.login(priv.host, { username: 'team', password: 's3cret-pw' });
    expect(statSync(credFile).mode & 0o777).toBe(0o600);
    const img = await s.ensureImage(ref);
    expect(img.ref).toBe(`${priv.host.replace(':', '__')}/team/base@${img.digest}`);
    // Stored under its host: a Docker Hub `team/base` is another image.
    await expect(s.resolveImage('team/base:1')).rejects.toThrow(/not found/);
    expect((await s.resolveImage(ref)).digest).toBe(img.digest);
    expect(await s.puller.logout(priv.host)).toBe(true);
    expect(await s.puller.logout(priv.host)).toBe(false);
  });
});

describe('a token-auth registry (Bearer realm/service/scope)', () => {
  it('gets a scoped token anonymously for public images and with credentials for private ones', async () => {
    const issued: { scope: string | null; account: string | null; basic: boolean }[] = [];
    const tokens = new Map<string, string>();
    const tokenServer = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const basic = req.headers.authorization?.startsWith('Basic ') === true;
      const ok =
        !basic ||
        req.headers.authorization === `Basic ${Buffer.from('tok:tok-pw').toString('base64')}`;
      issued.push({
        scope: u.searchParams.get('scope'),
        account: u.searchParams.get('account'),
        basic,
      });
      if (!ok || u.searchParams.get('service') !== 'test-registry') {
        res.writeHead(401).end();
        return;
      }
      const scope = u.searchParams.get('scope') ?? '';
      // Anonymous users get pull on public/* only (as Docker Hub's anonymous tokens).
      const granted = basic || /^repository:public\/[^:]+:pull$/.test(scope) ? scope : '';
      const token = `tok-${tokens.size}-${Math.random().toString(36).slice(2)}`;
      tokens.set(token, granted);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300 }));
    });
    servers.push(tokenServer);
    await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
    const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
    const url = await proxy(mirror.url, (req, res) => {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(req.url ?? '');
      const scope = m ? `repository:${m[1]}:pull` : '';
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const granted = bearer === undefined ? undefined : tokens.get(bearer);
      if (granted !== undefined && (scope === '' || granted === scope)) return false;
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${realm}",service="test-registry"${scope ? `,scope="${scope}"` : ''}`,
        'content-type': 'application/json',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return true;
    });
    await pushImage(`${mirror.host}/public/tiny:1`, { layers: [extra], config: PATH_ENV });
    await pushImage(`${mirror.host}/private/tiny:1`, { layers: [extra], config: PATH_ENV });
    const host = new URL(url).host;
    const s = await store();
    const pub = await s.ensureImage(`${host}/public/tiny:1`);
    expect(pub.layers).toHaveLength(1);
    expect(issued[0]).toMatchObject({ scope: 'repository:public/tiny:pull', basic: false });
    await expect(s.ensureImage(`${host}/private/tiny:1`)).rejects.toThrow(/refused access \(401\)/);
    await s.puller.login(host, { username: 'tok', password: 'tok-pw' });
    expect(issued.at(-1)).toMatchObject({ scope: null, account: 'tok', basic: true });
    const priv2 = await s.ensureImage(`${host}/private/tiny:1`);
    expect(priv2.layers[0]!.digest).toBe(pub.layers[0]!.digest);
    expect(issued.at(-1)).toMatchObject({ scope: 'repository:private/tiny:pull', basic: true });
  });
});

describe('offline', () => {
  it('local base images still serve; anything else fails fast naming image and registries', async () => {
    const closed = await freePort();
    const s = await store([`http://127.0.0.1:${closed}`]);
    await s.importRootfs(testRootfs(), 'library/busybox:latest', PATH_ENV);
    expect((await s.ensureImage('busybox')).ref).toBe('library/busybox:latest');
    const err = await s.ensureImage('node:26-alpine').then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('ImageNotFound');
    expect(err?.message.split('\n')).toHaveLength(1);
    expect(err?.message).toMatch(
      new RegExp(
        `^cannot pull node:26-alpine: mirror 127\\.0\\.0\\.1:${closed}: connection refused; registry-1\\.docker\\.io: (DNS lookup failed|connection refused|network unreachable|timed out)\\. Images here: library/busybox:latest$`,
      ),
    );
  });
});

// Real registries on loopback for pull tests: Debian's docker-registry (distribution 2.8) as
// a child process with its own temp config and storage (htpasswd Basic auth when asked), and
// images pushed to it with skopeo from OCI layouts made here, including multi-platform
// indexes. Nothing reaches the internet.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync, zstdDecompressSync } from 'node:zlib';
import { freePort } from './host.ts';

export { freePort };

const run = promisify(execFile);

export interface DockerRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  /** Everything the registry printed (its access log lines among it). */
  log(): string;
  /** Requests in the access log whose request line contains `needle`. */
  requests(needle: string): number;
  stop(): Promise<void>;
}

export async function startDockerRegistry(
  opts: { user?: string; password?: string } = {},
): Promise<DockerRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-docker-registry-'));
  const port = await freePort();
  let auth = '';
  if (opts.user !== undefined && opts.password !== undefined) {
    const { stdout } = await run('htpasswd', ['-Bbn', opts.user, opts.password]);
    writeFileSync(join(dir, 'htpasswd'), stdout);
    auth = `auth:\n  htpasswd:\n    realm: test-registry\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  const config = `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth}`;
  writeFileSync(join(dir, 'config.yml'), config);
  let out = '';
  const child: ChildProcess = spawn(
    '/usr/bin/docker-registry',
    ['serve', join(dir, 'config.yml')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited:\n${out}`);
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`docker-registry did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    log: () => out,
    requests: (needle) =>
      out.split('\n').filter((l) => /"(GET|HEAD) \/v2\//.test(l) && l.includes(needle)).length,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export type Platform = { os: string; architecture: string };
export type TestImage = {
  /** Compressed layer blobs (gzip or zstd, by magic), bottom first. */
  layers: Buffer[];
  config?: Record<string, unknown>;
  /** One entry: a plain manifest; more: an OCI index with one manifest per platform. */
  platforms?: Platform[];
};

/** A gzip'd tar of a directory (`tar -C dir -c .`). */
export async function tarLayer(dir: string): Promise<Buffer> {
  const { stdout } = await run('tar', ['-C', dir, '--numeric-owner', '-cf', '-', '.'], {
    encoding: 'buffer',
    maxBuffer: 512 * 1024 * 1024,
  });
  return gzipSync(stdout, { level: 1 });
}

function diffId(blob: Buffer): string {
  if (blob[0] === 0x1f && blob[1] === 0x8b) return sha(gunzipSync(blob));
  if (blob.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))
    return sha(zstdDecompressSync(blob));
  return sha(blob);
}

/**
 * Writes `img` as an OCI image layout (image-spec §image-layout) under `dir` with the ref
 * name `x`; returns the top manifest's (or index's) digest.
 */
export function writeOciLayout(dir: string, img: TestImage): string {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer | string) => {
    const d = sha(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return { digest: d, size: Buffer.byteLength(b) };
  };
  const layerDescs = img.layers.map((l) => ({
    mediaType:
      l[0] === 0x1f
        ? 'application/vnd.oci.image.layer.v1.tar+gzip'
        : 'application/vnd.oci.image.layer.v1.tar+zstd',
    ...put(l),
  }));
  const platforms = img.platforms ?? [{ os: 'linux', architecture: 'amd64' }];
  const manifests = platforms.map((p) => {
    const config = JSON.stringify({
      architecture: p.architecture,
      os: p.os,
      created: '2026-01-01T00:00:00Z',
      config: img.config ?? {},
      rootfs: { type: 'layers', diff_ids: img.layers.map(diffId) },
    });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers: layerDescs,
    });
    return {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...put(manifest),
      platform: p,
    };
  });
  let top: { mediaType: string; digest: string; size: number };
  if (manifests.length === 1) {
    const { platform: _p, ...m } = manifests[0]!;
    top = m;
  } else {
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests,
    });
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...put(index) };
  }
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': 'x' } }],
    }),
  );
  return top.digest;
}

/** Pushes `img` to `ref` (`host/repo:tag`) with skopeo; returns the pushed top digest. */
export async function pushImage(
  ref: string,
  img: TestImage,
  opts: { creds?: string } = {},
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-oci-push-'));
  try {
    const digest = writeOciLayout(dir, img);
    await run(
      'skopeo',
      [
        'copy',
        '--all',
        '--preserve-digests',
        '--dest-tls-verify=false',
        ...(opts.creds ? ['--dest-creds', opts.creds] : []),
        `oci:${dir}:x`,
        `docker://${ref}`,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    return digest;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

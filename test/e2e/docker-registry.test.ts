// Issue 4: a Docker engine can log in to paas's registry, push to it and pull from it, both
// images Docker made and images paas made (a git-push build and the imported base). A private
// dockerd (test/helpers/dockerd.ts) plays the user's engine and its containerd the registry
// client of newer engines; the image comes from `docker import` of the busybox test rootfs, so
// nothing needs Docker Hub. Docker treats 127.0.0.0/8 as an insecure registry, so plain HTTP on
// the API port is what it talks to.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { testRootfs } from '../helpers/host.ts';
import { appRepo, push, startPaas, type Paas } from './harness.ts';

const run = promisify(execFile);
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let p: Paas;
let d: Dockerd;
let reg: string;
let tarDir: string;

beforeAll(async () => {
  d = await startDockerd();
  p = await startPaas();
  reg = `127.0.0.1:${p.apiPort}`;
  tarDir = mkdtempSync(join(tmpdir(), 'paas-docker-rootfs-'));
  const tar = join(tarDir, 'rootfs.tar');
  await run('tar', ['-C', testRootfs(), '-cf', tar, '.']);
  const imported = await d.docker([
    'import',
    '--change',
    'CMD ["sh"]',
    tar,
    `${reg}/docker/busybox:v1`,
  ]);
  expect(imported.code, imported.stderr).toBe(0);
});
afterAll(async () => {
  await d?.stop();
  await p?.cleanup();
  if (tarDir) rmSync(tarDir, { recursive: true, force: true });
});

async function docker(...args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}\n-- paas daemon log:\n${p.daemonLog().slice(-3000)}`,
    );
  return r.stdout;
}
const imageId = async (ref: string) =>
  (await docker('image', 'inspect', '-f', '{{.Id}}', ref)).trim();

/** The manifest as our registry serves it to a client that accepts both formats. */
async function manifest(
  repo: string,
  ref: string,
): Promise<{ digest: string; mediaType: string; config: string; bytes: Buffer }> {
  const res = await fetch(`http://${reg}/v2/${repo}/manifests/${ref}`, {
    headers: {
      authorization: `Basic ${Buffer.from(`paas:${p.token}`).toString('base64')}`,
      accept: `${DOCKER_V2}, ${OCI_MANIFEST}`,
    },
  });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  const parsed = JSON.parse(bytes.toString()) as { config: { digest: string } };
  return {
    digest: res.headers.get('docker-content-digest') ?? '',
    mediaType: res.headers.get('content-type') ?? '',
    config: parsed.config.digest,
    bytes,
  };
}

describe('docker against the registry', () => {
  it('refuses a login with a wrong token and a push without one', async () => {
    const bad = await d.docker(['login', reg, '-u', 'paas', '--password-stdin'], 'not-the-token\n');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unauthorized|401/i);
    const anon = await d.docker(['push', `${reg}/docker/busybox:v1`]);
    expect(anon.code).not.toBe(0);
    expect(anon.stdout + anon.stderr).toMatch(
      /no basic auth credentials|unauthorized|authentication required/i,
    );
  });

  it('logs in with the token and pushes; the registry holds the very manifest docker reports', async () => {
    const login = await d.docker(['login', reg, '-u', 'paas', '--password-stdin'], `${p.token}\n`);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain('Login Succeeded');
    const out = await docker('push', `${reg}/docker/busybox:v1`);
    const pushed = /v1: digest: (sha256:[0-9a-f]{64}) size: (\d+)/.exec(out);
    expect(pushed, out).not.toBeNull();
    const digest = pushed![1]!;

    const m = await manifest('docker/busybox', 'v1');
    expect(m.digest).toBe(digest);
    expect(`sha256:${createHash('sha256').update(m.bytes).digest('hex')}`).toBe(digest);
    expect(m.bytes.length).toBe(Number(pushed![2]));
    expect(m.mediaType).toBe(DOCKER_V2);
    expect(m.config).toBe(await imageId(`${reg}/docker/busybox:v1`));
    const inspect = JSON.parse(
      (
        await run('skopeo', [
          'inspect',
          '--tls-verify=false',
          '--creds',
          `paas:${p.token}`,
          `docker://${reg}/docker/busybox:v1`,
        ])
      ).stdout,
    ) as { Digest: string };
    expect(inspect.Digest).toBe(digest);
    expect(
      await docker('image', 'inspect', '-f', '{{json .RepoDigests}}', `${reg}/docker/busybox:v1`),
    ).toContain(`${reg}/docker/busybox@${digest}`);

    // A second push finds every blob already there (HEAD on blobs) and names the same digest.
    const again = await docker('push', `${reg}/docker/busybox:v1`);
    expect(again).toMatch(/Layer already exists/);
    expect(again).toContain(`v1: digest: ${digest}`);
  });

  it('pulls the image back by tag and by digest after it was deleted locally', async () => {
    const id = await imageId(`${reg}/docker/busybox:v1`);
    const { digest } = await manifest('docker/busybox', 'v1');
    await docker('rmi', `${reg}/docker/busybox:v1`);
    expect((await d.docker(['image', 'inspect', id])).code).not.toBe(0);

    const pulled = await docker('pull', `${reg}/docker/busybox:v1`);
    expect(pulled).toContain(`Digest: ${digest}`);
    expect(await imageId(`${reg}/docker/busybox:v1`)).toBe(id);
    await docker('rmi', `${reg}/docker/busybox:v1`);
    await docker('pull', `${reg}/docker/busybox@${digest}`);
    expect(await imageId(`${reg}/docker/busybox@${digest}`)).toBe(id);
  });

  it('pulls what paas made itself: a git-push build and the imported base image', async () => {
    const r = await push(p, appRepo('busybox-web').dir, 'web');
    expect(r.code, r.stderr).toBe(0);
    const tags = (await (
      await fetch(`http://${reg}/v2/web/tags/list`, {
        headers: { authorization: `Bearer ${p.token}` },
      })
    ).json()) as { tags: string[] };
    const tag = tags.tags[0]!;
    expect(tag).toBeDefined();
    for (const [repo, ref] of [
      ['web', tag],
      ['library/busybox', 'latest'],
    ] as const) {
      const m = await manifest(repo, ref);
      const out = await docker('pull', `${reg}/${repo}:${ref}`);
      expect(out).toContain(`Digest: ${m.digest}`);
      // Docker's image ID is the config digest: the same image, not a conversion of it.
      expect(await imageId(`${reg}/${repo}:${ref}`)).toBe(m.config);
    }
    const cmd = JSON.parse(
      await docker('image', 'inspect', '-f', '{{json .Config.Cmd}}', `${reg}/web:${tag}`),
    ) as string[];
    expect(cmd.join(' ')).toContain('httpd -f -v');

    // Pushing it on under another name mounts its blobs from `web` instead of uploading them.
    await docker('tag', `${reg}/web:${tag}`, `${reg}/mirror/web:copy`);
    const copied = await docker('push', `${reg}/mirror/web:copy`);
    expect(copied).toContain('Mounted from web');
    expect((await manifest('mirror/web', 'copy')).config).toBe((await manifest('web', tag)).config);
  });

  // Docker's containerd image store (the default of fresh Docker 29 installs) and buildkit talk
  // to registries through containerd's resolver, not the engine code above: ctr uses it too.
  it("containerd's registry client pushes and pulls as well", async () => {
    const ctr = async (...args: string[]) => {
      const r = await d.ctr(args);
      if (r.code !== 0)
        throw new Error(`ctr ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const listed = async (ref: string) =>
      /\s(sha256:[0-9a-f]{64})\s/.exec(
        (await ctr('images', 'ls')).split('\n').find((l) => l.startsWith(`${ref} `)) ?? '',
      )?.[1];
    const creds = ['--plain-http', '--user', `paas:${p.token}`];
    await docker(
      'tag',
      `${reg}/docker/busybox@${(await manifest('docker/busybox', 'v1')).digest}`,
      `${reg}/containerd/busybox:v1`,
    );
    await docker('save', '-o', join(tarDir, 'saved.tar'), `${reg}/containerd/busybox:v1`);
    await ctr('images', 'import', join(tarDir, 'saved.tar'));

    const anon = await d.ctr(['images', 'push', '--plain-http', `${reg}/containerd/busybox:v1`]);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/401 Unauthorized/);
    await ctr('images', 'push', ...creds, `${reg}/containerd/busybox:v1`);
    expect((await manifest('containerd/busybox', 'v1')).digest).toBe(
      await listed(`${reg}/containerd/busybox:v1`),
    );

    // Blobs this containerd has never seen: the pull fetches them from the registry.
    await ctr('images', 'pull', ...creds, `${reg}/library/busybox:latest`);
    expect(await listed(`${reg}/library/busybox:latest`)).toBe(
      (await manifest('library/busybox', 'latest')).digest,
    );
  });

  it('after docker logout a push is refused', async () => {
    await docker('logout', reg);
    await docker(
      'tag',
      `${reg}/docker/busybox@${(await manifest('docker/busybox', 'v1')).digest}`,
      `${reg}/docker/busybox:after-logout`,
    );
    const r = await d.docker(['push', `${reg}/docker/busybox:after-logout`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      /no basic auth credentials|unauthorized|authentication required/i,
    );
    const tags = (await (
      await fetch(`http://${reg}/v2/docker/busybox/tags/list`, {
        headers: { authorization: `Bearer ${p.token}` },
      })
    ).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['v1']);
  });
});

// Base images (src/baseimages, provision/base-images): busybox always (seconds); debian and
// the slim node images of the pinned majors too (minutes the first time, cached in
// /var/cache/paas/base after that) unless PAAS_SKIP_BASE_IMAGES=1. Each image is run, not
// just resolved, and checked against what the official `node` image gives an app: the `node`
// user (1000, /home/node), yarn 1 and corepack, NODE_VERSION/YARN_VERSION/PATH, the
// docker-entrypoint.sh behaviour, and no compiler in -slim.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../builder/index.ts';
import { fixtureCopy, openHarness, runImage, type Harness } from '../builder/harness.ts';
import { openStore, type ImageStore } from '../registry/index.ts';
import { tempDir } from '../registry/testing.ts';
import { npmPack } from './build.ts';
import { lock } from './lock.ts';
import { parseNodeTag, pinnedVersion, tagsFor, versionFor } from './index.ts';

const run = promisify(execFile);
const SKIP = process.env.PAAS_SKIP_BASE_IMAGES === '1';
const script = path.resolve(import.meta.dirname, '../../provision/base-images');
let t: ReturnType<typeof tempDir>;
let dataDir: string;

/** The store's layer blobs (past 4 KiB: not manifests or configs) and unpacked layer files,
 * with size and mtime: what an import that is not cheap would write again. */
function storedLayers(dir: string): string[] {
  const root = path.join(dir, 'images');
  return (fs.readdirSync(root, { recursive: true }) as string[])
    .map((f) => [f, fs.lstatSync(path.join(root, f))] as const)
    .filter(([f, st]) => st.isFile() && (f.startsWith('layers/') || st.size > 4096))
    .map(([f, st]) => `${f} ${st.size} ${st.mtimeMs}`)
    .sort();
}

beforeAll(() => {
  t = tempDir('base');
  dataDir = path.join(t.dir, 'data');
});
afterAll(async () => {
  await t.cleanup();
});

/** Runs argv inside the image: its layers as read-only overlay lowerdirs, then chroot. */
async function runIn(
  store: ImageStore,
  ref: string,
  argv: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const dirs = await store.layerDirs(await store.resolveImage(ref));
  const root =
    dirs.length === 1 ? (dirs[0] as string) : path.join(t.dir, `merged-${ref.replace(/\W/g, '_')}`);
  if (dirs.length > 1) {
    fs.mkdirSync(root, { recursive: true });
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${dirs.join(':')}`, root]);
  }
  try {
    return (
      await run('/usr/sbin/chroot', [root, ...argv], {
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root', ...env },
      })
    ).stdout.trim();
  } finally {
    if (dirs.length > 1) await run('umount', [root]);
  }
}

describe('node tags', () => {
  it('parse as the official ones: version, line or alias, -bookworm, -slim', () => {
    expect(parseNodeTag('22')).toEqual({ spec: '22', kind: 'major', variant: 'full' });
    expect(parseNodeTag('22-slim')).toEqual({ spec: '22', kind: 'major', variant: 'slim' });
    expect(parseNodeTag('20.17-bookworm-slim')).toEqual({
      spec: '20.17',
      kind: 'minor',
      variant: 'slim',
    });
    expect(parseNodeTag('20.17.0-bookworm')).toEqual({
      spec: '20.17.0',
      kind: 'exact',
      variant: 'full',
    });
    expect(parseNodeTag('lts-slim')).toEqual({ spec: '24', kind: 'major', variant: 'slim' });
    expect(parseNodeTag('slim')).toEqual({ spec: '26', kind: 'major', variant: 'slim' });
    for (const t of ['22-alpine', 'bullseye', '22-bullseye-slim', 'x-slim', ''])
      expect(parseNodeTag(t)).toBeNull();
  });

  it('a major means its pinned patch, a line its newest release, a version itself', () => {
    const releases = ['24.99.0', '22.99.0', '20.17.0', '20.17.1', '20.18.0', '18.20.8'];
    expect(versionFor(parseNodeTag('22')!, releases)).toBe(pinnedVersion(22));
    expect(versionFor(parseNodeTag('18-slim')!, releases)).toBe('18.20.8');
    expect(versionFor(parseNodeTag('20.17')!, releases)).toBe('20.17.1');
    expect(versionFor(parseNodeTag('20.17.0')!, releases)).toBe('20.17.0');
    expect(versionFor(parseNodeTag('20.16.0')!, releases)).toBeNull();
    expect(versionFor(parseNodeTag('19')!, releases)).toBeNull();
  });

  it('an image answers to its version and the line it was asked for, with both suffixes', () => {
    expect(tagsFor('18.20.8', 'slim', parseNodeTag('18-slim')!)).toEqual([
      'library/node:18.20.8-slim',
      'library/node:18.20.8-bookworm-slim',
      'library/node:18-slim',
      'library/node:18-bookworm-slim',
    ]);
    expect(tagsFor(pinnedVersion(24)!, 'full')).toEqual(
      [pinnedVersion(24), '24', 'lts'].flatMap((n) => [
        `library/node:${n}`,
        `library/node:${n}-bookworm`,
      ]),
    );
  });

  it('the full tags sit on buildpack-deps: git, curl, python3, make and g++ on top of slim', () => {
    // Building the full image takes a second debootstrap (several minutes): the tests check
    // its recipe here, and build it only through provision/base-images --node 22.
    for (const p of ['git', 'curl', 'python3', 'make', 'g++'])
      expect(lock.debian.full).toContain(p);
    expect(lock.debian.include).not.toContain('g++');
  });
});

describe('inputs from the npm registry', () => {
  it('a tarball whose sha512 is not the pinned one is refused before it is unpacked', async () => {
    const dir = fs.mkdtempSync(path.join(t.dir, 'pack-'));
    await expect(
      npmPack('yarn', { version: lock.yarn.version, integrity: 'sha512-AAAA' }, dir),
    ).rejects.toThrow(/yarn@1\.22\.22: integrity mismatch \(got sha512-.+, expected sha512-AAAA\)/);
    expect(fs.readdirSync(dir).filter((f) => !f.endsWith('.tgz'))).toEqual([]);
    await expect(npmPack('yarn', lock.yarn, dir)).resolves.toMatch(/yarn-1\.22\.22\.tgz$/);
  }, 120_000);
});

describe('base images', () => {
  it('imports busybox, which resolves as busybox and busybox:latest and runs', async () => {
    await run(script, ['--data-dir', dataDir, '--only', 'busybox', '--quiet'], {
      timeout: 120_000,
    });
    const store = await openStore(dataDir);
    const img = await store.resolveImage('busybox');
    expect(img.ref).toBe('library/busybox:latest');
    expect((await store.resolveImage('busybox:latest')).digest).toBe(img.digest);
    expect(img.config.Cmd).toEqual(['sh']);
    expect(
      await runIn(store, 'busybox', [
        '/bin/sh',
        '-c',
        'echo hello from $(basename $(readlink /bin/sh))',
      ]),
    ).toBe('hello from busybox');
    // A second import is idempotent and cheap: no layer is written or unpacked again.
    const before = storedLayers(dataDir);
    await run(script, ['--data-dir', dataDir, '--only', 'busybox', '--quiet']);
    expect(storedLayers(dataDir)).toEqual(before);
    expect((await store.resolveImage('busybox')).digest).toBe(img.digest);
  }, 180_000);

  it.skipIf(SKIP)(
    'builds debian:bookworm and node:22/24/26-slim, faithful to the official images',
    async () => {
      await run(script, ['--data-dir', dataDir, '--quiet'], {
        timeout: 40 * 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const store = await openStore(dataDir);
      const debian = await store.resolveImage('debian:bookworm-slim');
      expect((await store.resolveImage('debian:bookworm')).digest).toBe(debian.digest);
      expect(
        await runIn(store, 'debian:bookworm', [
          '/bin/sh',
          '-c',
          '. /etc/os-release && echo $VERSION_CODENAME && test -s /etc/ssl/certs/ca-certificates.crt && echo certs',
        ]),
      ).toBe('bookworm\ncerts');
      expect((await store.resolveImage('node:lts-slim')).digest).toBe(
        (await store.resolveImage('node:24-slim')).digest,
      );
      for (const [major, { version }] of Object.entries(lock.node)) {
        const img = await store.resolveImage(`node:${major}-slim`);
        for (const alias of [`${major}-bookworm-slim`, `${version}-slim`])
          expect((await store.resolveImage(`node:${alias}`)).digest).toBe(img.digest);
        expect(img.layers[0]?.digest).toBe(debian.layers[0]?.digest);
        // The official image's ENV, ENTRYPOINT and CMD.
        expect(img.config.Env).toEqual([
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          `NODE_VERSION=${version}`,
          `YARN_VERSION=${lock.yarn.version}`,
        ]);
        expect(img.config.Entrypoint).toEqual(['docker-entrypoint.sh']);
        expect(img.config.Cmd).toEqual(['node']);
        const ref = `node:${major}-slim`;
        expect(await runIn(store, ref, ['/usr/local/bin/node', '-p', 'process.version'])).toBe(
          `v${version}`,
        );
        expect(await runIn(store, ref, ['/usr/local/bin/npm', '--version'])).toBe(
          lock.npm[major]!.version,
        );
        // yarn's launcher needs /dev/null: checked in a real container below.
        expect(await runIn(store, ref, ['/usr/local/bin/corepack', '--version'])).toMatch(
          /^0\.\d+\.\d+$/,
        );
        expect(await runIn(store, ref, ['/usr/bin/id', 'node'])).toBe(
          'uid=1000(node) gid=1000(node) groups=1000(node)',
        );
        expect(
          await runIn(store, ref, [
            '/bin/sh',
            '-c',
            'getent passwd node; stat -c %u:%g:%a /home/node',
          ]),
        ).toBe('node:x:1000:1000::/home/node:/bin/bash\n1000:1000:755');
        // -slim has no compiler (the full tag, on buildpack-deps, has one).
        expect(
          await runIn(store, ref, [
            '/bin/sh',
            '-c',
            'for c in g++ make git; do command -v $c || echo no-$c; done',
          ]),
        ).toBe('no-g++\nno-make\nno-git');
        // docker-entrypoint.sh: a flag or a script runs under node; a command runs itself.
        expect(
          await runIn(store, ref, ['docker-entrypoint.sh', '-p', '1 + 1'], {
            PATH: '/usr/local/bin:/usr/bin:/bin',
          }),
        ).toBe('2');
        expect(
          await runIn(store, ref, ['docker-entrypoint.sh', 'echo', 'plain'], {
            PATH: '/usr/local/bin:/usr/bin:/bin',
          }),
        ).toBe('plain');
      }
      await expect(store.resolveImage('python:3')).rejects.toThrow(/library\/python:3 not found/);
    },
    45 * 60_000,
  );
});

describe('a Dockerfile written for the official image', () => {
  let h: Harness;
  beforeAll(async () => {
    if (SKIP) return;
    h = await openHarness();
    await run(script, ['--data-dir', h.dataDir, '--only', 'node', '--quiet'], {
      timeout: 40 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  }, 45 * 60_000);
  afterAll(async () => {
    await h?.cleanup();
  });

  it.skipIf(SKIP)(
    'USER node and COPY --chown=node:node build on node:22-slim; the app runs as 1000 with HOME=/home/node',
    async () => {
      const ctx = fixtureCopy('user-node');
      try {
        const lines: string[] = [];
        const { image } = await build({
          contextDir: ctx,
          tag: { repo: 'user-node', tag: 'latest' },
          runtime: h.runtime,
          store: h.store,
          dataDir: h.dataDir,
          onLine: (l) => lines.push(l),
        });
        expect(image.config.User).toBe('node');
        const r = await runImage(h, image);
        expect(r.exitCode, `${r.stderr}\n${lines.join('\n')}`).toBe(0);
        const tools = await runImage(h, image, [
          '/bin/sh',
          '-c',
          'yarn --version && corepack --version && npm --version',
        ]);
        expect(tools.stdout.trim().split('\n')).toEqual([
          lock.yarn.version,
          lock.corepack.default!.version,
          lock.npm['22']!.version,
        ]);
        expect(JSON.parse(r.stdout)).toEqual({
          uid: 1000,
          gid: 1000,
          home: '/home/node',
          user: 'node',
          owner: '1000:1000',
          dataOwner: '1000',
        });
      } finally {
        fs.rmSync(ctx, { recursive: true, force: true });
      }
    },
    10 * 60_000,
  );
});

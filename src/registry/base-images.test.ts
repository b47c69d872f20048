// Base images from provision/base-images: busybox always (seconds); debian and node are
// built too (minutes the first time, cached in /var/cache/paas/base after that) unless
// PAAS_SKIP_BASE_IMAGES=1. Each image is run, not just resolved: its layers are stacked with
// overlayfs and a command is executed in it with chroot.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidImageRef } from '../errors/index.ts';
import { openStore, type ImageStore } from './index.ts';
import { tempDir } from './testing.ts';

const run = promisify(execFile);
const script = path.resolve(import.meta.dirname, '../../provision/base-images');
const lock = JSON.parse(
  fs.readFileSync(
    path.resolve(import.meta.dirname, '../../provision/base-images.lock.json'),
    'utf8',
  ),
) as { node: Record<string, { version: string }> };
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
async function runIn(store: ImageStore, ref: string, argv: string[]): Promise<string> {
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
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root' },
      })
    ).stdout.trim();
  } finally {
    if (dirs.length > 1) await run('umount', [root]);
  }
}

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

  it.skipIf(process.env.PAAS_SKIP_BASE_IMAGES === '1')(
    'builds debian:bookworm and node:22/24/26 that run node and npm',
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
      expect((await store.resolveImage('node:lts')).digest).toBe(
        (await store.resolveImage('node:24')).digest,
      );
      for (const [major, { version }] of Object.entries(lock.node)) {
        const img = await store.resolveImage(`node:${major}-slim`);
        expect((await store.resolveImage(`node:${major}`)).digest).toBe(img.digest);
        expect(img.layers[0]?.digest).toBe(debian.layers[0]?.digest);
        expect(img.config.Env).toContain(`NODE_VERSION=${version}`);
        expect(
          await runIn(store, `node:${major}`, [
            '/usr/local/bin/node',
            '-e',
            'console.log(process.version)',
          ]),
        ).toBe(`v${version}`);
        expect(await runIn(store, `node:${major}`, ['/usr/local/bin/npm', '--version'])).toMatch(
          /^\d+\.\d+\.\d+$/,
        );
      }
      await expect(store.resolveImage('node:20')).rejects.toThrow(InvalidImageRef);
      await expect(store.resolveImage('node:20')).rejects.toThrow(
        /end-of-life.*node:22, node:24, node:26/,
      );
      const missing = await store.resolveImage('python:3').catch((e: unknown) => e);
      expect(String(missing)).toMatch(
        /library\/python:3 not found\. Images here: .*library\/node:22.*paas images:import/,
      );
    },
    45 * 60_000,
  );
});

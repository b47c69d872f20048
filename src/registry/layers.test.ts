// Layers are a security border: hostile tars must be refused with a clear error naming the
// entry, and leave nothing behind (no layer dir, no tmp leftovers, nothing outside).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as tar from 'tar';
import { InvalidLayer } from '../errors/index.ts';
import { openStore, type ImageStore } from './index.ts';
import { sha256 } from './digest.ts';
import { diffIdOf, makeTar, tempDir, type FakeEntry } from './testing.ts';

let t: ReturnType<typeof tempDir>;
let store: ImageStore;

beforeEach(async () => {
  t = tempDir('layers');
  store = await openStore(path.join(t.dir, 'data'), {
    layerLimits: { maxEntries: 50, maxBytes: 64 * 1024 },
  });
});
afterEach(async () => {
  await t.cleanup();
});

async function unpack(entries: FakeEntry[]): Promise<string> {
  const blob = makeTar(entries);
  const { digest, size } = await store.putBlob(blob);
  const image = await store.commitImage({
    repo: 'layertest',
    tag: 'v1',
    base: null,
    newLayers: [{ digest, diffId: diffIdOf(blob), size }],
    config: {},
  });
  const [dir] = await store.layerDirs(image);
  return dir as string;
}

function opaque(dir: string): string | null {
  try {
    return execFileSync('getfattr', ['--only-values', '-h', '-n', 'trusted.overlay.opaque', dir], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
  } catch {
    return null;
  }
}

function isWhiteout(p: string): boolean {
  const st = fs.lstatSync(p);
  return st.isCharacterDevice() && st.rdev === 0;
}

async function tarEntries(digest: string): Promise<string[]> {
  const names: string[] = [];
  await tar.t({
    file: store.blobPath(digest),
    onReadEntry: (e) => names.push(`${e.type}:${e.path}`),
  });
  return names;
}

describe('whiteouts and opaque directories', () => {
  const layer: FakeEntry[] = [
    { path: 'a/', type: 'Directory' },
    { path: 'a/keep', body: 'kept' },
    { path: 'a/.wh.gone' },
    { path: 'b/', type: 'Directory' },
    { path: 'b/.wh..wh..opq' },
    { path: 'b/new', body: 'new' },
    { path: '.wh.top' },
    { path: 'c/d/.wh..wh..opq' },
  ];

  it('unpacks OCI whiteouts into overlayfs form and packs them back the same', async () => {
    const dir = await unpack(layer);
    expect(fs.readFileSync(path.join(dir, 'a/keep'), 'utf8')).toBe('kept');
    expect(isWhiteout(path.join(dir, 'a/gone'))).toBe(true);
    expect(isWhiteout(path.join(dir, 'top'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'a/.wh.gone'))).toBe(false);
    expect(opaque(path.join(dir, 'b'))).toBe('y');
    expect(opaque(path.join(dir, 'c/d'))).toBe('y');
    expect(opaque(path.join(dir, 'a'))).toBeNull();

    const back = await store.diffToLayer(dir);
    const names = await tarEntries(back.digest);
    expect(names).toEqual(
      expect.arrayContaining([
        'File:.wh.top',
        'File:a/.wh.gone',
        'File:a/keep',
        'File:b/.wh..wh..opq',
        'File:b/new',
        'File:c/d/.wh..wh..opq',
      ]),
    );
    expect(names.some((n) => n.startsWith('CharacterDevice'))).toBe(false);

    // Unpacking the packed layer again gives the same overlay semantics.
    const again = await store.commitImage({
      repo: 'layertest',
      tag: 'v2',
      base: null,
      newLayers: [back],
      config: {},
    });
    const [dir2] = await store.layerDirs(again);
    expect(isWhiteout(path.join(dir2 as string, 'a/gone'))).toBe(true);
    expect(isWhiteout(path.join(dir2 as string, 'top'))).toBe(true);
    expect(opaque(path.join(dir2 as string, 'b'))).toBe('y');
    expect(fs.readFileSync(path.join(dir2 as string, 'b/new'), 'utf8')).toBe('new');
  });

  it('a real entry beats a whiteout of the same name in the same layer', async () => {
    const dir = await unpack([{ path: '.wh.x' }, { path: 'x', body: 'real' }]);
    expect(fs.readFileSync(path.join(dir, 'x'), 'utf8')).toBe('real');
  });

  it('stacks with overlayfs: a whiteout hides the lower file, an opaque dir hides the lower dir', async (ctx) => {
    const lower = await unpack([
      { path: 'a/gone', body: '1' },
      { path: 'a/keep', body: '2' },
      { path: 'b/old', body: '3' },
    ]);
    const upper = await unpack([
      { path: 'a/.wh.gone' },
      { path: 'b/.wh..wh..opq' },
      { path: 'b/new', body: '4' },
    ]);
    const merged = path.join(t.dir, 'merged');
    fs.mkdirSync(merged);
    try {
      execFileSync(
        'mount',
        ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper}:${lower}`, merged],
        { stdio: 'pipe' },
      );
    } catch {
      ctx.skip();
      return;
    }
    try {
      expect(fs.readdirSync(path.join(merged, 'a'))).toEqual(['keep']);
      expect(fs.readdirSync(path.join(merged, 'b'))).toEqual(['new']);
    } finally {
      execFileSync('umount', [merged]);
    }
  });
});

describe('diffToLayer is deterministic', () => {
  it('gives identical digests for identical content regardless of mtimes', async () => {
    const src = path.join(t.dir, 'upper');
    fs.mkdirSync(path.join(src, 'app/lib'), { recursive: true });
    fs.writeFileSync(path.join(src, 'app/index.js'), 'console.log(1)\n');
    fs.writeFileSync(path.join(src, 'app/lib/x.js'), 'x'.repeat(5000));
    fs.symlinkSync('index.js', path.join(src, 'app/main.js'));
    fs.linkSync(path.join(src, 'app/index.js'), path.join(src, 'app/hard.js'));
    execFileSync('mknod', [path.join(src, 'app/deleted'), 'c', '0', '0']);
    const first = await store.diffToLayer(src);
    const later = new Date(Date.now() + 3600_000);
    for (const f of ['app/index.js', 'app/lib/x.js', 'app/lib', 'app'])
      fs.utimesSync(path.join(src, f), later, later);
    const second = await store.diffToLayer(src);
    expect(second).toEqual(first);
    expect(await tarEntries(first.digest)).toEqual([
      'Directory:app/',
      'File:app/.wh.deleted',
      'File:app/hard.js',
      'Link:app/index.js',
      'Directory:app/lib/',
      'File:app/lib/x.js',
      'SymbolicLink:app/main.js',
    ]);
    fs.writeFileSync(path.join(src, 'app/index.js'), 'console.log(2)\n');
    const third = await store.diffToLayer(src);
    expect(third.digest).not.toBe(first.digest);
    expect(third.diffId).not.toBe(first.diffId);
  });

  it('packs symlinks that dangle in the upper dir (they point into a lower layer)', async () => {
    const src = path.join(t.dir, 'upper-dangling');
    fs.mkdirSync(path.join(src, 'usr/bin'), { recursive: true });
    fs.symlinkSync('/usr/lib/x86_64-linux-gnu/libfoo.so.1', path.join(src, 'usr/bin/libfoo'));
    fs.symlinkSync('../share/missing', path.join(src, 'usr/bin/rel'));
    const layer = await store.diffToLayer(src);
    expect(await tarEntries(layer.digest)).toEqual([
      'Directory:usr/',
      'Directory:usr/bin/',
      'SymbolicLink:usr/bin/libfoo',
      'SymbolicLink:usr/bin/rel',
    ]);
  });
});

describe('hostile layers are refused and leave nothing behind', () => {
  const outside = (): string => path.join(t.dir, 'outside');
  const cases: [string, () => FakeEntry[], RegExp][] = [
    [
      '../ traversal',
      () => [
        { path: 'ok', body: '1' },
        { path: '../../escape', body: 'x' },
      ],
      /entry "\.\.\/\.\.\/escape" contains "\.\."/,
    ],
    [
      'absolute path',
      () => [{ path: '/etc/paas-evil', body: 'x' }],
      /entry "\/etc\/paas-evil" is an absolute path/,
    ],
    [
      'symlink to / then a file through it',
      () => [
        { path: 'root', type: 'SymbolicLink', linkpath: '/' },
        { path: `root${outside()}/pwned`, body: 'x' },
      ],
      /goes through "root", which is a symlink/,
    ],
    [
      'symlink to a host dir then a file through it',
      () => [
        { path: 'l', type: 'SymbolicLink', linkpath: outside() },
        { path: 'l/pwned', body: 'x' },
      ],
      /entry "l\/pwned" goes through "l"/,
    ],
    [
      'relative symlink climbing out',
      () => [{ path: 'a/up', type: 'SymbolicLink', linkpath: '../../../../etc' }],
      /symlink "a\/up" -> "\.\.\/\.\.\/\.\.\/\.\.\/etc" leads outside the layer/,
    ],
    [
      'hard link to a host file',
      () => [{ path: 'pw', type: 'Link', linkpath: '/etc/passwd' }],
      /hard link "pw" -> "\/etc\/passwd" leads outside the layer/,
    ],
    [
      'hard link climbing out',
      () => [{ path: 'pw', type: 'Link', linkpath: '../../../etc/passwd' }],
      /hard link "pw" -> "\.\.\/\.\.\/\.\.\/etc\/passwd" leads outside/,
    ],
    [
      'hard link through a symlink',
      () => [
        { path: 's', type: 'SymbolicLink', linkpath: '/etc' },
        { path: 'pw', type: 'Link', linkpath: 's/passwd' },
      ],
      /hard link "pw" -> "s\/passwd" must point at a file earlier in the same layer/,
    ],
    [
      'character device',
      () => [{ path: 'dev/mem', type: 'CharacterDevice', devmaj: 1, devmin: 1 }],
      /entry "dev\/mem" is a character device node/,
    ],
    [
      'block device',
      () => [{ path: 'sda', type: 'BlockDevice', devmaj: 8, devmin: 0 }],
      /entry "sda" is a block device node/,
    ],
    [
      'tar bomb: too many entries',
      () => Array.from({ length: 60 }, (_, i) => ({ path: `f${i}`, body: '' })),
      /more than 50 entries \(limit\) at entry "f50"/,
    ],
    [
      'tar bomb: too large',
      () => [
        { path: 'small', body: 'x' },
        { path: 'big', body: Buffer.alloc(100 * 1024) },
      ],
      /unpacks to more than 64\.0 KiB|unpacks to more than 65536 bytes \(limit\) at entry "big"/,
    ],
    ['not a tar', () => [], /not a valid tar stream|refused/],
    [
      'wrong diff_id',
      () => [{ path: 'fine', body: 'x' }],
      /its content is sha256:[0-9a-f]{64}, but the image config says diff_id sha256:/,
    ],
  ];

  it.each(cases)('%s', async (name, entries, message) => {
    fs.mkdirSync(outside(), { recursive: true });
    const blob =
      name === 'not a tar'
        ? Buffer.from('this is not a tar archive at all, just text '.repeat(30))
        : makeTar(entries());
    const { digest, size } = await store.putBlob(blob);
    const diffId = name === 'wrong diff_id' ? sha256('not this layer') : diffIdOf(blob);
    const image = await store.commitImage({
      repo: 'evil',
      tag: 'v1',
      base: null,
      newLayers: [{ digest, diffId, size }],
      config: {},
    });
    const err = await store.layerDirs(image).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLayer);
    expect((err as Error).message).toMatch(message);
    const images = path.join(t.dir, 'data', 'images');
    expect(fs.readdirSync(path.join(images, 'layers'))).toEqual([]);
    expect(fs.readdirSync(path.join(images, 'tmp'))).toEqual([]);
    expect(fs.readdirSync(outside())).toEqual([]);
    expect(fs.existsSync('/etc/paas-evil')).toBe(false);
  });
});

// The in-root resolver against real trees with hostile symlinks: whatever the path and the
// links say, the result is a canonical path inside the root, or a typed refusal. A canary
// directory beside the root holds the files the links aim at; it is never reached.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidPath } from '../errors/index.ts';
import { hostRoot, hostRootSync, LayerStack } from './layers.ts';
import { makeTree } from './testing.ts';
import { MAX_SYMLINKS, resolveInRoot, resolveInRootSync } from './resolve.ts';

const base = mkdtempSync('/var/tmp/paas-fsroot-');
const root = path.join(base, 'root');
const canary = path.join(base, 'canary');
afterAll(() => rmSync(base, { recursive: true, force: true }));

makeTree(canary, { 'etc/passwd': 'host secret', 'etc/cron.d/keep': 'k' }, {});
makeTree(
  root,
  { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n', 'usr/bin/sh': 'sh', 'a/b/c/file': 'f' },
  {
    bin: 'usr/bin',
    abs: '/etc',
    hostabs: canary,
    'a/b/c/up': '../../../../../../../../../etc',
    'a/b/c/uphost': `../../../../../../../../..${canary}`,
    'a/b/self': '.',
    loop1: 'loop2',
    loop2: 'loop1',
    selfloop: 'selfloop',
    pw: '/etc/passwd',
    dangling: '/nope/deeper',
  },
);
// A chain of exactly MAX_SYMLINKS links to etc/passwd, and one more in front of it.
for (let i = 0; i < MAX_SYMLINKS; i++)
  symlinkSync(
    i === MAX_SYMLINKS - 1 ? '/etc/passwd' : `chain${i + 1}`,
    path.join(root, `chain${i}`),
  );
symlinkSync('chain0', path.join(root, 'chain-1'));

const host = hostRoot(root);
const rel = async (p: string, followLast = true): Promise<string> =>
  (await resolveInRoot(host, p, { followLast })).rel;

function refusal(reason: string): unknown {
  return expect.objectContaining({
    constructor: InvalidPath,
    details: expect.objectContaining({ reason }),
  });
}

describe('resolveInRoot (RESOLVE_IN_ROOT semantics)', () => {
  it('follows absolute symlinks from the root, never the host', async () => {
    expect(await rel('/abs/passwd')).toBe('etc/passwd');
    expect(await rel('hostabs/etc/passwd')).toBe(path.join(canary, 'etc/passwd').slice(1));
    const r = await resolveInRoot(host, 'hostabs/etc/passwd');
    expect(r.stat).toBeNull();
  });

  it('clamps relative symlinks with many .. at the root', async () => {
    expect(await rel('a/b/c/up/passwd')).toBe('etc/passwd');
    expect(await host.readFile(await rel('a/b/c/up/passwd'))).toContain('root:x:0');
    expect(await rel('a/b/c/uphost/etc/passwd')).toBe(path.join(canary, 'etc/passwd').slice(1));
    expect(await rel('a/b/self/self/self/c/file')).toBe('a/b/c/file');
  });

  it('clamps .. past the root', async () => {
    expect(await rel('../../../etc/passwd')).toBe('etc/passwd');
    expect(await rel('/a/../../..')).toBe('');
    expect((await resolveInRoot(host, '..')).stat?.isDirectory()).toBe(true);
  });

  it('follows symlinked parents such as /bin -> usr/bin', async () => {
    const r = await resolveInRoot(host, '/bin/sh');
    expect(r.parts).toEqual(['usr', 'bin', 'sh']);
    expect(r.stat?.isFile()).toBe(true);
  });

  it('refuses symlink loops with ELOOP after 40 links, and allows exactly 40', async () => {
    await expect(resolveInRoot(host, 'loop1')).rejects.toEqual(refusal('ELOOP'));
    await expect(resolveInRoot(host, 'selfloop/x')).rejects.toEqual(refusal('ELOOP'));
    expect(await rel('chain0')).toBe('etc/passwd');
    await expect(resolveInRoot(host, 'chain-1')).rejects.toEqual(refusal('ELOOP'));
    // Not following the last component, a loop is just a symlink.
    expect((await resolveInRoot(host, 'loop1', { followLast: false })).stat?.isSymbolicLink()).toBe(
      true,
    );
  });

  it('walks past a missing component and resolves the .. after it, never keeping ..', async () => {
    expect(await rel('/nope/../../../../etc/cron.d/x')).toBe('etc/cron.d/x');
    expect(await rel('nope/a/../b')).toBe('nope/b');
    expect(await rel('nope/x/y/../../..')).toBe('');
    // Climbing back out of the missing part resumes lookups: the symlink is followed again.
    const r = await resolveInRoot(host, 'nope/../bin/sh');
    expect(r.rel).toBe('usr/bin/sh');
    expect(r.stat?.isFile()).toBe(true);
    expect((await resolveInRoot(host, 'nope/more')).stat).toBeNull();
    // A dangling absolute link resolves to its target inside the root, to be created there.
    expect(await rel('dangling/f')).toBe('nope/deeper/f');
    for (const p of ['nope/../../x', '/nope/../../../../etc/cron.d/x', 'a/nope/../../../..'])
      expect((await rel(p)).split('/')).not.toContain('..');
  });

  it('refuses a file (or a symlink to one) in the middle of a path with ENOTDIR', async () => {
    await expect(resolveInRoot(host, 'pw/x')).rejects.toEqual(refusal('ENOTDIR'));
    await expect(resolveInRoot(host, 'etc/passwd/x')).rejects.toEqual(refusal('ENOTDIR'));
    await expect(resolveInRoot(host, 'etc/passwd/..')).rejects.toEqual(refusal('ENOTDIR'));
    expect((await resolveInRoot(host, 'pw')).stat?.isFile()).toBe(true);
    expect((await resolveInRoot(host, 'pw', { followLast: false })).rel).toBe('pw');
  });

  it('in beneath mode (RESOLVE_BENEATH) refuses with EXDEV what in-root mode clamps', async () => {
    const beneath = { beneath: true };
    await expect(resolveInRoot(host, '../etc', beneath)).rejects.toEqual(refusal('EXDEV'));
    await expect(resolveInRoot(host, 'abs/passwd', beneath)).rejects.toEqual(refusal('EXDEV'));
    await expect(resolveInRoot(host, 'a/b/c/up', beneath)).rejects.toEqual(refusal('EXDEV'));
    expect((await resolveInRoot(host, 'bin/sh', beneath)).rel).toBe('usr/bin/sh');
    expect((await resolveInRoot(host, 'a/b/../b/c/file', beneath)).rel).toBe('a/b/c/file');
  });
});

describe('resolveInRootSync', () => {
  it('is the same walk over a synchronous root', async () => {
    const sync = hostRootSync(root);
    for (const p of ['/abs/passwd', 'a/b/c/up/passwd', '/nope/../../etc/x', 'bin/sh', 'dangling/f'])
      expect(resolveInRootSync(sync, p).rel, p).toBe(await rel(p));
    expect(() => resolveInRootSync(sync, 'loop1')).toThrow(/more than 40 symlinks/);
    expect(() => resolveInRootSync(sync, 'abs', { beneath: true })).toThrow(/outside the root/);
  });
});

describe('resolveInRoot over layers', () => {
  const lower = path.join(base, 'lower');
  const upper = path.join(base, 'upper');
  // The lower layer's /etc is a symlink to the host's canary; the upper layer has a real
  // /etc (overlayfs: a directory over a non-directory hides it). Nothing reaches the canary.
  makeTree(lower, { 'usr/lib/x': 'x' }, { etc: path.join(canary, 'etc'), lib: 'usr/lib' });
  makeTree(upper, { 'etc/hostname': 'h' }, {});
  const stack = new LayerStack([upper, lower]);

  it('never walks through a symlink inside one layer', async () => {
    expect(await stack.lstat('etc/passwd')).toBeNull();
    expect(await stack.readFile('etc/passwd')).toBeNull();
    expect(await new LayerStack([lower]).lstat('etc/passwd')).toBeNull();
    expect((await resolveInRoot(new LayerStack([lower]), 'etc/passwd')).rel).toBe(
      path.join(canary, 'etc/passwd').slice(1),
    );
  });

  it('resolves symlinks from lower layers as the merged view has them', async () => {
    const r = await resolveInRoot(stack, '/lib/x');
    expect(r.rel).toBe('usr/lib/x');
    expect(r.stat?.isFile()).toBe(true);
  });
});

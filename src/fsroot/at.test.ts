// The *at() helpers write inside a root without following anything: a symlink in any
// component, or at the name being created, is refused by the kernel, never followed.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { close, createFileAt, lstatAt, openDir, openPathAt, removeAt } from './at.ts';

const base = mkdtempSync('/var/tmp/paas-fsroot-at-');
const root = path.join(base, 'root');
const outside = path.join(base, 'outside');
mkdirSync(path.join(root, 'a/b'), { recursive: true });
mkdirSync(outside);
writeFileSync(path.join(outside, 'keep'), 'k');
symlinkSync(outside, path.join(root, 'a/out'));
symlinkSync(path.join(outside, 'new'), path.join(root, 'a/b/dangling'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('*at() helpers', () => {
  const rootfd = openDir(root);
  afterAll(() => close(rootfd));

  it('enter directories only through real directories', async () => {
    const ab = await openPathAt(rootfd, ['a', 'b']);
    expect(ab).not.toBeNull();
    close(ab as number);
    expect(await openPathAt(rootfd, ['a', 'out'])).toBeNull();
    await expect(openPathAt(rootfd, ['a', 'out'], () => undefined)).rejects.toMatchObject({
      // Linux answers O_DIRECTORY|O_NOFOLLOW on a symlink with ENOTDIR.
      code: expect.stringMatching(/^(ELOOP|ENOTDIR)$/),
    });
  });

  it('create missing directories through the callback, and files only where nothing is', async () => {
    const made: string[] = [];
    const fd = (await openPathAt(rootfd, ['a', 'new', 'deep'], (p, name) => {
      made.push(name);
      mkdirSync(`/proc/self/fd/${p}/${name}`);
    })) as number;
    expect(made).toEqual(['new', 'deep']);
    close(createFileAt(fd, 'f'));
    expect(() => createFileAt(fd, 'f')).toThrow(/EEXIST/);
    close(fd);
    const b = (await openPathAt(rootfd, ['a', 'b'])) as number;
    // O_CREAT|O_EXCL|O_NOFOLLOW: a dangling symlink at the name is not followed to create its target.
    expect(() => createFileAt(b, 'dangling')).toThrow(/EEXIST/);
    expect(lstatAt(b, 'dangling')?.isSymbolicLink()).toBe(true);
    close(b);
    expect(readdirSync(outside)).toEqual(['keep']);
  });

  it('remove a symlink, not what it points at', async () => {
    const a = (await openPathAt(rootfd, ['a'])) as number;
    removeAt(a, 'out');
    expect(lstatAt(a, 'out')).toBeNull();
    close(a);
    expect(readdirSync(outside)).toEqual(['keep']);
    expect(() => removeAt(rootfd, '..')).toThrow(/single path component/);
  });
});

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/host.ts';
import { leftoverScratch, scratchName, writeFileWhole, writeFileWholeAsync } from './index.ts';

const tmp = tempDir('files');
afterAll(() => tmp.cleanup());

const modeOf = (p: string) => statSync(p).mode & 0o777;

describe.each([
  ['writeFileWhole', async (p: string, d: string, o = {}) => writeFileWhole(p, d, o)],
  ['writeFileWholeAsync', writeFileWholeAsync],
] as const)('%s', (name, write) => {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);

  it('replaces the file and leaves nothing beside it', async () => {
    const p = join(dir, 'a');
    writeFileSync(p, 'old');
    await write(p, 'new');
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['a']);
  });

  it('gives a secret exactly the mode asked, whatever the umask or the file it replaces', async () => {
    const p = join(dir, 'secret');
    writeFileSync(p, 'old', { mode: 0o644 });
    const umask = process.umask(0);
    try {
      await write(p, 'token', { mode: 0o600 });
    } finally {
      process.umask(umask);
    }
    expect(modeOf(p)).toBe(0o600);
    const narrow = process.umask(0o077);
    try {
      await write(join(dir, 'public'), 'cert', { mode: 0o644, fsync: true });
    } finally {
      process.umask(narrow);
    }
    expect(modeOf(join(dir, 'public'))).toBe(0o644);
  });

  it('leaves no temporary when the rename fails, and the name as it was', async () => {
    const p = join(dir, 'taken');
    mkdirSync(p); // a directory where the file should go: rename(2) refuses (EISDIR)
    await expect(write(p, 'new')).rejects.toThrow(/EISDIR/);
    expect(statSync(p).isDirectory()).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith('taken'))).toEqual(['taken']);
  });

  it('lets concurrent writers of one file each land whole', async () => {
    const p = join(dir, 'busy');
    const bodies = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));
    await Promise.all(bodies.map((b) => write(p, b)));
    expect(bodies).toContain(readFileSync(p, 'utf8'));
    expect(readdirSync(dir).filter((f) => f.startsWith('busy'))).toEqual(['busy']);
  });
});

describe('scratch entries', () => {
  it('names what a dead process left as leftover, never what a live one holds', async () => {
    const dir = join(tmp.dir, 'scratch');
    mkdirSync(dir);
    const mine = scratchName(dir, 'blob');
    writeFileSync(mine, '');
    const dead = spawnSync('true').pid;
    mkdirSync(join(dir, `${dead}-0a1b2c-layer`));
    writeFileSync(join(dir, 'stray'), '');
    expect(mine.startsWith(join(dir, `${process.pid}-`))).toBe(true);
    expect((await leftoverScratch(dir)).sort()).toEqual([`${dead}-0a1b2c-layer`, 'stray']);
    expect(await leftoverScratch(join(dir, 'missing'))).toEqual([]);
  });
});

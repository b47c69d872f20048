// COPY's content hashing: the file-hash memo is the build's, not the process's.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rootTree } from './context.ts';
import { collectSources, hashSources } from './sources.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'paas-sources-'));
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'package.json'), '{"name":"app"}\n');
  writeFileSync(join(dir, 'lib', 'index.js'), 'module.exports = 1;\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('hashSources', () => {
  it('remembers file hashes in the memo it is given, one entry per file read', async () => {
    const tree = rootTree(dir, 'build context');
    const memo = new Map<string, string>();
    const sources = await collectSources(tree, ['package.json', 'lib'], 1);
    const first = await hashSources(tree, sources, memo);
    expect(memo.size).toBe(2);
    // A second COPY of the same files in the same build reads nothing new.
    expect(await hashSources(tree, sources, memo)).toBe(first);
    expect(memo.size).toBe(2);
    // Another build starts with its own memo and gets the same digest: the key is content.
    const other = new Map<string, string>();
    expect(await hashSources(tree, sources, other)).toBe(first);
    expect(other.size).toBe(2);
  });

  it('hashes a rewritten file again: a changed file changes the digest', async () => {
    const tree = rootTree(dir, 'build context');
    const memo = new Map<string, string>();
    const sources = await collectSources(tree, ['package.json'], 1);
    const before = await hashSources(tree, sources, memo);
    writeFileSync(join(dir, 'package.json'), '{"name":"app","version":"2.0.0"}\n');
    const after = await hashSources(tree, await collectSources(tree, ['package.json'], 1), memo);
    expect(after).not.toBe(before);
  });
});

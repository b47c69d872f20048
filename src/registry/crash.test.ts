// kill -9 at any point must leave the store consistent: a writer killed mid-blob or
// mid-unpack leaves only tmp files, which the next open sweeps; no partial blob or layer
// directory is ever visible under its final name.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from './index.ts';
import { diffIdOf, makeTar, tempDir } from './testing.ts';

let t: ReturnType<typeof tempDir>;
beforeEach(() => {
  t = tempDir('crash');
});
afterEach(async () => {
  await t.cleanup();
});

const storeModule = path.resolve(import.meta.dirname, 'index.ts');

/** Runs `body` in a child node process with `store` open, and SIGKILLs it once `ready` holds. */
async function killMidway(dataDir: string, body: string, ready: () => boolean): Promise<void> {
  const code = `import { openStore } from ${JSON.stringify(storeModule)};\nconst store = await openStore(${JSON.stringify(dataDir)});\n${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '--eval', code], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`child finished before it could be killed: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await exited;
}

const tmpEntries = (dataDir: string) => fs.readdirSync(path.join(dataDir, 'images/tmp'));

describe('crash safety', () => {
  it('a blob write killed midway leaves no blob and its tmp file is swept on open', async () => {
    const dataDir = path.join(t.dir, 'data');
    await openStore(dataDir);
    const body = `
      const { Readable } = await import('node:stream');
      let n = 0;
      const slow = new Readable({ read() { setTimeout(() => this.push(n++ < 100000 ? Buffer.alloc(65536, 7) : null), 5); } });
      await store.putBlob(slow);`;
    await killMidway(dataDir, body, () =>
      tmpEntries(dataDir).some((f) => fs.statSync(path.join(dataDir, 'images/tmp', f)).size > 0),
    );
    expect(fs.readdirSync(path.join(dataDir, 'images/blobs/sha256'))).toEqual([]);
    expect(tmpEntries(dataDir).length).toBe(1);
    await openStore(dataDir);
    expect(tmpEntries(dataDir)).toEqual([]);
  });

  it('a layer unpack killed midway leaves no layer dir; the next layerDirs unpacks it whole', async () => {
    const dataDir = path.join(t.dir, 'data');
    const store = await openStore(dataDir);
    const entries = Array.from({ length: 6_000 }, (_, i) => ({
      path: `d${i % 50}/f${i}`,
      body: `file ${i}`,
    }));
    const blob = makeTar(entries);
    const { digest, size } = await store.putBlob(blob);
    await store.commitImage({
      repo: 'big',
      tag: 'v1',
      base: null,
      newLayers: [{ digest, size, diffId: diffIdOf(blob) }],
      config: {},
    });
    const partial = () =>
      tmpEntries(dataDir).some(
        (f) =>
          f.includes('layer-') && fs.readdirSync(path.join(dataDir, 'images/tmp', f)).length > 5,
      );
    await killMidway(
      dataDir,
      `await store.layerDirs(await store.resolveImage('big:v1'));`,
      partial,
    );
    expect(fs.readdirSync(path.join(dataDir, 'images/layers'))).toEqual([]);
    const reopened = await openStore(dataDir);
    expect(tmpEntries(dataDir)).toEqual([]);
    const [dir] = await reopened.layerDirs(await reopened.resolveImage('big:v1'));
    expect(fs.readFileSync(path.join(dir as string, 'd7/f5957'), 'utf8')).toBe('file 5957');
  });
});

// A build's scratch space: `<dataDir>/build/tmp/<pid>-<random>/`, on the data dir's
// filesystem so finished upper dirs can be renamed into the layer cache. Unique per build, so
// concurrent builds never share a directory; removed when the build ends, and swept (views
// unmounted first) by the next build when a killed build left one behind.
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { leftoverScratch, scratchName } from '../files/index.ts';

const run = promisify(execFile);

export type Workspace = {
  root: string;
  /** An empty directory (the bottom layer of read-only views, the lower of layerless RUNs). */
  empty: string;
  dir(label: string): Promise<string>;
  remove(): Promise<void>;
};

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo, octal-escaped). */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(`${dir}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await run('umount', ['-l', m]).catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Removes workspaces of builds whose process is gone. */
async function sweep(tmpDir: string): Promise<void> {
  for (const name of await leftoverScratch(tmpDir))
    await removeTree(path.join(tmpDir, name)).catch(() => undefined);
}

export async function openWorkspace(dataDir: string): Promise<Workspace> {
  const tmpDir = path.join(dataDir, 'build', 'tmp');
  await fsp.mkdir(tmpDir, { recursive: true });
  await sweep(tmpDir);
  const root = scratchName(tmpDir);
  const empty = path.join(root, 'empty');
  await fsp.mkdir(empty, { recursive: true });
  let n = 0;
  return {
    root,
    empty,
    dir: async (label) => {
      const d = path.join(root, `${++n}-${label}`);
      await fsp.mkdir(d, { recursive: true });
      return d;
    },
    remove: () => removeTree(root),
  };
}

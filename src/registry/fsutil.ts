// Crash safety for the store: everything is written under `tmp/` and renamed into place, so
// kill -9 at any point leaves either the old state or the new one, plus tmp files that the
// next open removes. Tmp names carry the writer's pid (files/index.ts scratchName) so a live
// writer's files are never swept by another process opening the same store.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { leftoverScratch, scratchName } from '../files/index.ts';

export async function writeFileAtomic(
  tmpDir: string,
  file: string,
  data: string | Buffer,
): Promise<void> {
  const tmp = scratchName(tmpDir, path.basename(file));
  await fsp.writeFile(tmp, data);
  try {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** Removes tmp entries whose writing process is gone (left by a crash). */
export async function sweepTmp(tmpDir: string): Promise<string[]> {
  const removed = await leftoverScratch(tmpDir);
  for (const name of removed)
    await fsp.rm(path.join(tmpDir, name), { recursive: true, force: true });
  return removed;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

export async function readTextOrNull(p: string): Promise<string | null> {
  try {
    return await fsp.readFile(p, 'utf8');
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === 'ENOENT' ||
      (err as NodeJS.ErrnoException).code === 'ENOTDIR'
    )
      return null;
    throw err;
  }
}

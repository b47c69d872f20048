// Crash safety for the store: everything is written under `tmp/` and renamed into place, so
// kill -9 at any point leaves either the old state or the new one, plus tmp files that the
// next open removes. Tmp names carry the writer's pid so a live writer's files are never
// swept by another process opening the same store.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export function tmpName(tmpDir: string, label: string): string {
  return path.join(tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}-${label}`);
}

export async function writeFileAtomic(
  tmpDir: string,
  file: string,
  data: string | Buffer,
): Promise<void> {
  const tmp = tmpName(tmpDir, path.basename(file));
  await fsp.writeFile(tmp, data);
  try {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes tmp entries whose writing process is gone (left by a crash). */
export async function sweepTmp(tmpDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fsp.readdir(tmpDir).catch(() => [] as string[])) {
    const pid = Number(name.split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await fsp.rm(path.join(tmpDir, name), { recursive: true, force: true });
    removed.push(name);
  }
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

// Files written whole: the new content goes to a file beside the old one, then is renamed
// over it. rename(2) replaces a name atomically within a filesystem, so a reader, a crash or
// kill -9 sees the old file or the new one, never half of one. Everything the platform keeps
// in small files (container meta, tokens, the route table, haproxy's maps, certificates,
// offsets) is written through here.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  promises as fsp,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export interface WholeWrite {
  /**
   * The new file's permission bits, exactly: set on the open descriptor, so neither the
   * umask nor a leftover file widens or narrows them, and a secret is never readable by
   * others, not even for a moment. Default: 0o666 under the umask, as writeFile.
   */
  mode?: number;
  /**
   * fsync before the rename: after a power cut the file is the old one or the new, not
   * empty (the rename can reach the disk before the data). For what the platform cannot
   * make again: certificates and keys, the route table.
   */
  fsync?: boolean;
}

/** Beside `path` (the same filesystem), unique per process and call. */
function aside(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

export function writeFileWhole(
  path: string,
  data: string | Uint8Array,
  opts: WholeWrite = {},
): void {
  const tmp = aside(path);
  try {
    const fd = openSync(tmp, 'wx', opts.mode ?? 0o666);
    try {
      if (opts.mode !== undefined) fchmodSync(fd, opts.mode);
      writeFileSync(fd, data);
      if (opts.fsync === true) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** writeFileWhole without blocking the event loop. */
export async function writeFileWholeAsync(
  path: string,
  data: string | Uint8Array,
  opts: WholeWrite = {},
): Promise<void> {
  const tmp = aside(path);
  try {
    const fh = await fsp.open(tmp, 'wx', opts.mode ?? 0o666);
    try {
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      await fh.writeFile(data);
      if (opts.fsync === true) await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

// Scratch entries (a registry upload in progress, a build's workspace) are named after the
// process that makes them, `<pid>-<random>[-<label>]`, so whoever opens the directory next
// removes what a killed process left and never what a live one is writing.

/** A fresh scratch name under `dir`, owned by this process. */
export function scratchName(dir: string, label?: string): string {
  const name = `${process.pid}-${randomBytes(6).toString('hex')}`;
  return join(dir, label === undefined ? name : `${name}-${label}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The entries of `dir` whose maker is gone (or that name none): left over, safe to remove. */
export async function leftoverScratch(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((name) => {
    const pid = Number(name.split('-')[0]);
    return !(Number.isInteger(pid) && pid > 0 && alive(pid));
  });
}

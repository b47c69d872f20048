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

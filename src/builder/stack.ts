// Lookups through a stack of layer directories (topmost first) without mounting them: what
// COPY needs to resolve a destination and keep existing parents' owners, and what RUN needs
// to know which mount points the image already has. Overlay rules (kernel
// Documentation/filesystems/overlayfs.rst; OCI image spec layer.md §Whiteouts): a 0:0
// character device is a whiteout, and a whiteout, a non-directory or an opaque directory at
// an ancestor hides everything below it in lower layers. Layer directories are immutable,
// so opaque-attribute answers are memoized.
import { execFile } from 'node:child_process';
import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const opaqueMemo = new Map<string, boolean>();

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

async function isOpaque(abs: string): Promise<boolean> {
  const hit = opaqueMemo.get(abs);
  if (hit !== undefined) return hit;
  const r = await run('getfattr', [
    '--only-values',
    '-h',
    '-n',
    'trusted.overlay.opaque',
    abs,
  ]).catch(() => null);
  const v = r !== null && r.stdout.trim() === 'y';
  if (opaqueMemo.size > 50_000) opaqueMemo.clear();
  opaqueMemo.set(abs, v);
  return v;
}

/** What COPY and RUN ask of an image's filesystem. */
export interface Lookup {
  lstat(rel: string): Promise<Stats | null>;
  readlink(rel: string): Promise<string>;
  readFile(rel: string): Promise<string | null>;
}

/** A mounted (or plain) root directory. */
export function dirLookup(root: string): Lookup {
  return {
    lstat: (rel) => fsp.lstat(path.join(root, rel)).catch(() => null),
    readlink: (rel) => fsp.readlink(path.join(root, rel)),
    readFile: (rel) => fsp.readFile(path.join(root, rel), 'utf8').catch(() => null),
  };
}

export class LayerStack implements Lookup {
  private readonly dirs: string[];

  constructor(dirs: string[]) {
    this.dirs = dirs;
  }

  /** Whether layer `dir` hides `parts` in the layers below it. */
  private async hides(dir: string, parts: string[]): Promise<boolean> {
    for (let k = 1; k < parts.length; k++) {
      const abs = path.join(dir, ...parts.slice(0, k));
      const st = await fsp.lstat(abs).catch(() => null);
      if (st === null) return false;
      if (!st.isDirectory()) return true;
      if (await isOpaque(abs)) return true;
    }
    return false;
  }

  /** The layer file that `rel` is in the merged view, or null. */
  async locate(rel: string): Promise<{ abs: string; st: Stats } | null> {
    const parts = rel.split('/').filter((c) => c !== '' && c !== '.');
    for (const dir of this.dirs) {
      const abs = path.join(dir, ...parts);
      const st = await fsp.lstat(abs).catch(() => null);
      if (st !== null) return isWhiteout(st) ? null : { abs, st };
      if (await this.hides(dir, parts)) return null;
    }
    return null;
  }

  async lstat(rel: string): Promise<Stats | null> {
    return (await this.locate(rel))?.st ?? null;
  }

  async readlink(rel: string): Promise<string> {
    const at = await this.locate(rel);
    if (at === null) throw Object.assign(new Error(`${rel}: not found`), { code: 'ENOENT' });
    return fsp.readlink(at.abs);
  }

  async readFile(rel: string): Promise<string | null> {
    const at = await this.locate(rel);
    return at === null || !at.st.isFile() ? null : fsp.readFile(at.abs, 'utf8');
  }
}

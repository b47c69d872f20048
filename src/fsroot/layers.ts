// Roots the resolver walks: a plain host directory, and a stack of layer directories
// (topmost first) read as their overlay merge without mounting them. Overlay rules (kernel
// Documentation/filesystems/overlayfs.rst; OCI image spec layer.md §Whiteouts): a 0:0
// character device is a whiteout, and a whiteout, a non-directory or an opaque directory at
// an ancestor hides everything below it in lower layers. Inside one layer an ancestor that
// is not a real directory (a symlink above all) is never walked through: overlayfs merges
// directories only, so what lies "below" a symlink in a layer is not part of the image.
import { execFile } from 'node:child_process';
import fs, { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Root, SyncRoot } from './resolve.ts';

const run = promisify(execFile);
const opaqueMemo = new Map<string, boolean>();

export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Whether a directory carries overlayfs's opaque xattr (never following a symlink). */
export async function isOpaque(abs: string, memo = false): Promise<boolean> {
  const hit = memo ? opaqueMemo.get(abs) : undefined;
  if (hit !== undefined) return hit;
  const r = await run('getfattr', [
    '--only-values',
    '-h',
    '-n',
    'trusted.overlay.opaque',
    abs,
  ]).catch(() => null);
  const v = r !== null && r.stdout.trim() === 'y';
  if (memo) {
    if (opaqueMemo.size > 50_000) opaqueMemo.clear();
    opaqueMemo.set(abs, v);
  }
  return v;
}

async function lstatOrNull(abs: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** What COPY, RUN and the user lookup ask of an image's filesystem. */
export interface Lookup extends Root {
  /** A regular file's text, or null when `rel` is missing or not a regular file. */
  readFile(rel: string): Promise<string | null>;
}

function split(rel: string): string[] {
  return rel.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * A plain host directory as a root. `rel` must be canonical (from the resolver): its
 * parents are real directories, so joining it onto the directory follows nothing.
 */
export function hostRoot(dir: string): Lookup {
  const abs = (rel: string): string => path.join(dir, ...split(rel));
  return {
    lstat: (rel) => lstatOrNull(abs(rel)),
    readlink: (rel) => fsp.readlink(abs(rel)),
    readFile: async (rel) => {
      const st = await lstatOrNull(abs(rel));
      return st !== null && st.isFile() ? fsp.readFile(abs(rel), 'utf8') : null;
    },
  };
}

/** hostRoot for callers that cannot await (build detection reads a few named files). */
export function hostRootSync(dir: string): SyncRoot {
  const abs = (rel: string): string => path.join(dir, ...split(rel));
  return {
    lstat: (rel) => {
      try {
        return fs.lstatSync(abs(rel));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return null;
        throw err;
      }
    },
    readlink: (rel) => fs.readlinkSync(abs(rel)),
  };
}

export class LayerStack implements Lookup {
  private readonly dirs: string[];
  private readonly memo: boolean;

  /**
   * `dirs` topmost first. Layers are immutable, so opaque answers are memoized, unless
   * `mutableTop` says the first one is being written (a COPY layer in the making).
   */
  constructor(dirs: string[], opts: { mutableTop?: boolean } = {}) {
    this.dirs = dirs;
    this.memo = opts.mutableTop !== true;
  }

  /** The layer file that `rel` is in the merged view, or null. */
  async locate(rel: string): Promise<{ abs: string; st: Stats } | null> {
    const parts = split(rel);
    for (const [n, dir] of this.dirs.entries()) {
      // Ancestors in this layer: absent (look lower), a real directory (go on; opaque stops
      // the search after this layer), anything else (hides the rest, and is not walked).
      let present = true;
      let opaque = false;
      for (let k = 1; k < parts.length && present; k++) {
        const abs = path.join(dir, ...parts.slice(0, k));
        const st = await lstatOrNull(abs);
        if (st === null) present = false;
        else if (!st.isDirectory()) return null;
        else if (await isOpaque(abs, this.memo || n > 0)) opaque = true;
      }
      if (present) {
        const abs = path.join(dir, ...parts);
        const st = await lstatOrNull(abs);
        if (st !== null) return isWhiteout(st) ? null : { abs, st };
      }
      if (opaque) return null;
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

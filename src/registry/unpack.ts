// Layer extraction: the security border between image content and the host (issue 4).
// A layer is attacker-controlled (pushed to our registry, imported, or pulled from a mirror),
// so extraction never trusts the filesystem it is writing to: every entry's path is checked
// lexically ('..' and absolute paths refused), every parent directory must be one this
// extraction created itself (a symlink or file created by an earlier entry is never followed:
// the entry is refused), files are opened O_CREAT|O_EXCL|O_NOFOLLOW, hard links may only
// point at files already extracted from the same layer, device nodes are refused, and the
// entry count and unpacked size are capped (tar bombs; tar's own 1000:1 decompression-ratio
// guard covers gzip bombs).
//
// The result is in overlayfs form so layer directories stack directly as lowerdirs
// (OCI image spec layer.md §Whiteouts; kernel Documentation/filesystems/overlayfs.rst):
// `.wh.<name>` becomes a 0:0 character device made by us (never taken from the tar), and
// `.wh..wh..opq` becomes the `trusted.overlay.opaque=y` xattr on its directory.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Parser, type ReadEntry } from 'tar';
import { InvalidLayer } from '../errors/index.ts';
import { O_CREATE_NEW } from '../fsroot/index.ts';

const run = promisify(execFile);

export type LayerLimits = { maxBytes: number; maxEntries: number };

export const DEFAULT_LAYER_LIMITS: LayerLimits = {
  maxBytes: 16 * 1024 ** 3,
  maxEntries: 1_000_000,
};

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

type Kind = 'dir' | 'file' | 'symlink' | 'fifo' | 'whiteout';
type Meta = { mode: number; uid: number; gid: number; mtime: Date };

function humanBytes(n: number): string {
  return n >= 1024 ** 3
    ? `${(n / 1024 ** 3).toFixed(1)} GiB`
    : n >= 1024 ** 2
      ? `${(n / 1024 ** 2).toFixed(1)} MiB`
      : `${n} bytes`;
}

/** Runs `cmd` once per item in a single shell, so thousands of whiteouts cost one spawn per 500. */
async function forEachPath(script: string, paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 500) {
    await run('sh', ['-ec', `for p; do ${script}; done`, 'sh', ...paths.slice(i, i + 500)]);
  }
}

/**
 * Extracts the layer stream (tar, tar+gzip or tar+zstd) into `root`, an empty directory the
 * caller created and removes on failure. Throws InvalidLayer naming the offending entry.
 */
export async function extractLayer(
  input: Readable,
  root: string,
  limits: LayerLimits,
  label: string,
): Promise<void> {
  const kinds = new Map<string, Kind>([['', 'dir']]);
  const dirMeta = new Map<string, Meta>();
  const fifoMeta = new Map<string, Meta>();
  const opaque = new Set<string>();
  let entries = 0;
  let bytes = 0;
  let failure: unknown = null;

  const refuse = (why: string): never => {
    throw new InvalidLayer(`layer ${label} refused: ${why}`, { layer: label, reason: why });
  };
  const abs = (rel: string): string => (rel === '' ? root : path.join(root, rel));

  const normalize = (raw: string, what: string): string => {
    if (raw.startsWith('/')) refuse(`${what} "${raw}" is an absolute path`);
    const parts: string[] = [];
    for (const p of raw.split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') refuse(`${what} "${raw}" contains ".."`);
      parts.push(p);
    }
    return parts.join('/');
  };

  // Every parent must be a directory this extraction made; anything else (notably a symlink
  // from an earlier entry) is refused rather than followed.
  const prepareParents = (rel: string, raw: string): void => {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : (parts[i] as string);
      const k = kinds.get(cur);
      if (k === 'dir') continue;
      if (k === undefined || k === 'whiteout') {
        fs.mkdirSync(abs(cur), 0o755);
        kinds.set(cur, 'dir');
        continue;
      }
      refuse(
        `entry "${raw}" goes through "${cur}", which is a ${k} in this layer (writing through it could leave the layer)`,
      );
    }
  };

  // Later entries replace earlier ones at the same path (tar semantics); pending whiteouts
  // and fifos are not on disk yet.
  const clearTarget = (rel: string): void => {
    const k = kinds.get(rel);
    if (k === undefined) return;
    if (k === 'dir') {
      fs.rmSync(abs(rel), { recursive: true, force: true });
      for (const key of [...kinds.keys()]) if (key.startsWith(`${rel}/`)) kinds.delete(key);
    } else if (k === 'file' || k === 'symlink') {
      fs.unlinkSync(abs(rel));
    }
    kinds.delete(rel);
    fifoMeta.delete(rel);
  };

  const metaOf = (e: ReadEntry, fallbackMode: number): Meta => ({
    mode: typeof e.mode === 'number' ? e.mode & 0o7777 : fallbackMode,
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    mtime: e.mtime ?? new Date(0),
  });

  const handle = (e: ReadEntry): void => {
    entries++;
    if (entries > limits.maxEntries)
      refuse(`more than ${limits.maxEntries} entries (limit) at entry "${e.path}"`);
    bytes += e.size ?? 0;
    if (bytes > limits.maxBytes)
      refuse(`unpacks to more than ${humanBytes(limits.maxBytes)} (limit) at entry "${e.path}"`);
    const raw = e.path;
    const rel = normalize(raw, 'entry');
    if (rel === '') {
      if (e.type !== 'Directory') refuse(`entry "${raw}" names the layer root but is a ${e.type}`);
      e.resume();
      return;
    }
    const base = path.posix.basename(rel);
    const dir = rel.includes('/') ? path.posix.dirname(rel) : '';
    if (base === OPAQUE_MARKER) {
      prepareParents(rel, raw);
      opaque.add(dir);
      e.resume();
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === '' || name === '.' || name === '..') refuse(`whiteout "${raw}" names no file`);
      const target = dir ? `${dir}/${name}` : name;
      prepareParents(target, raw);
      // A whiteout hides lower layers only; a real entry at the same path in this layer wins.
      if (!kinds.has(target)) kinds.set(target, 'whiteout');
      e.resume();
      return;
    }
    switch (e.type) {
      case 'Directory': {
        prepareParents(rel, raw);
        if (kinds.get(rel) !== 'dir') {
          clearTarget(rel);
          fs.mkdirSync(abs(rel), 0o700);
          kinds.set(rel, 'dir');
        }
        dirMeta.set(rel, metaOf(e, 0o755));
        e.resume();
        return;
      }
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        prepareParents(rel, raw);
        clearTarget(rel);
        const meta = metaOf(e, 0o644);
        const fd = fs.openSync(abs(rel), O_CREATE_NEW, 0o600);
        kinds.set(rel, 'file');
        let open = true;
        const close = (): void => {
          if (open) fs.closeSync(fd);
          open = false;
        };
        e.on('data', (chunk: Buffer) => {
          if (!open || failure) return;
          try {
            for (let off = 0; off < chunk.length;) off += fs.writeSync(fd, chunk, off);
          } catch (err) {
            close();
            fail(err);
          }
        });
        e.on('end', () => {
          if (!open) return;
          try {
            // chown before chmod: chown clears set-id bits.
            fs.fchownSync(fd, meta.uid, meta.gid);
            fs.fchmodSync(fd, meta.mode);
            fs.futimesSync(fd, meta.mtime, meta.mtime);
          } catch (err) {
            fail(err);
          } finally {
            close();
          }
        });
        return;
      }
      case 'SymbolicLink': {
        const target = e.linkpath ?? '';
        if (target === '') refuse(`symlink "${raw}" has no target`);
        // Absolute targets resolve against the container's root at run time, never the host's
        // (we never follow links while extracting); relative ones must stay inside the layer.
        if (!target.startsWith('/')) {
          const resolved = path.posix.normalize(path.posix.join(dir || '.', target));
          if (resolved === '..' || resolved.startsWith('../'))
            refuse(`symlink "${raw}" -> "${target}" leads outside the layer`);
        }
        prepareParents(rel, raw);
        clearTarget(rel);
        const meta = metaOf(e, 0o777);
        fs.symlinkSync(target, abs(rel));
        fs.lchownSync(abs(rel), meta.uid, meta.gid);
        fs.lutimesSync(abs(rel), meta.mtime, meta.mtime);
        kinds.set(rel, 'symlink');
        e.resume();
        return;
      }
      case 'Link': {
        const linkpath = e.linkpath ?? '';
        if (linkpath.startsWith('/') || linkpath.split('/').includes('..'))
          refuse(`hard link "${raw}" -> "${linkpath}" leads outside the layer`);
        const target = normalize(linkpath, `hard link "${raw}" target`);
        const tk = kinds.get(target);
        if (tk !== 'file' && tk !== 'symlink') {
          refuse(
            `hard link "${raw}" -> "${linkpath}" must point at a file earlier in the same layer (found ${tk ?? 'nothing'})`,
          );
        }
        if (target === rel) refuse(`hard link "${raw}" points at itself`);
        prepareParents(rel, raw);
        clearTarget(rel);
        fs.linkSync(abs(target), abs(rel));
        kinds.set(rel, 'file');
        e.resume();
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
        refuse(
          `entry "${raw}" is a ${e.type === 'CharacterDevice' ? 'character' : 'block'} device node; layers may not carry device nodes`,
        );
        return;
      case 'FIFO': {
        prepareParents(rel, raw);
        clearTarget(rel);
        kinds.set(rel, 'fifo');
        fifoMeta.set(rel, metaOf(e, 0o644));
        e.resume();
        return;
      }
      default:
        refuse(`entry "${raw}" has unsupported type ${e.type}`);
    }
  };

  let parser: Parser | null = null;
  function fail(err: unknown): void {
    if (failure) return;
    failure = err;
    input.unpipe();
    input.destroy();
    parser?.abort(err instanceof Error ? err : new Error(String(err)));
  }

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      if (failure) reject(failure);
      else resolve();
    };
    const p = new Parser({ strict: false });
    parser = p;
    p.on('entry', (e: ReadEntry) => {
      if (failure) {
        e.resume();
        return;
      }
      try {
        handle(e);
      } catch (err) {
        e.resume();
        fail(err);
      }
    });
    p.on('ignoredEntry', (e: ReadEntry) => {
      try {
        refuse(`entry "${e.path}" has unsupported type ${e.type} or oversized metadata`);
      } catch (err) {
        fail(err);
      }
    });
    p.on('warn', (code: string, message: string | Error) => {
      const text = message instanceof Error ? message.message : String(message);
      // A layer with no entries (just the end-of-archive blocks) is valid: empty layers exist.
      if (code === 'TAR_BAD_ARCHIVE' && /Unrecognized archive format/.test(text) && entries === 0)
        return;
      try {
        refuse(`not a valid tar stream (${code}: ${text})`);
      } catch (err) {
        fail(err);
      }
    });
    p.on('error', (err: Error) => {
      if (!failure)
        failure = new InvalidLayer(
          `layer ${label} refused: not a valid tar stream (${err.message})`,
          { layer: label },
          { cause: err },
        );
      settle();
    });
    p.on('end', settle);
    p.on('close', settle);
    input.on('error', (err) => {
      fail(err);
      settle();
    });
    input.pipe(p as unknown as NodeJS.WritableStream);
  });

  // Overlay whiteouts are made by us: mode 0 char devices 0:0 (never a device from the tar).
  const whiteouts = [...kinds].filter(([, k]) => k === 'whiteout').map(([rel]) => abs(rel));
  await forEachPath('mknod -m 000 "$p" c 0 0', whiteouts);
  for (const [rel, meta] of fifoMeta) {
    await run('mkfifo', ['-m', (meta.mode & 0o777).toString(8), '--', abs(rel)]);
    fs.lchownSync(abs(rel), meta.uid, meta.gid);
  }
  await forEachPath(`setfattr -h -n ${OPAQUE_XATTR} -v y -- "$p"`, [...opaque].map(abs));
  // Directory metadata last and deepest first, so writing children does not reset mtimes.
  const dirs = [...dirMeta].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
  for (const [rel, meta] of dirs) {
    if (kinds.get(rel) !== 'dir') continue;
    const p = abs(rel);
    fs.lchownSync(p, meta.uid, meta.gid);
    fs.chmodSync(p, meta.mode);
    fs.utimesSync(p, meta.mtime, meta.mtime);
  }
}

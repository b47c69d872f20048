// Test helpers: hand-made layer tars (including hostile ones) built with the tar library's
// header encoder, and temp data dirs that clean up after themselves.
import { mkdtempSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sha256, type Digest } from './digest.ts';
import type { HeaderData } from 'tar';
import { headerBytes } from './layerwriter.ts';

export type FakeEntry = Omit<HeaderData, 'size'> & { path: string; body?: string | Buffer };

/** A tar (gzip by default) of exactly these entries, in this order. */
export function makeTar(entries: FakeEntry[], gzip = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    const type = e.type ?? 'File';
    parts.push(
      headerBytes({
        mode: type === 'Directory' ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        mtime: new Date(0),
        ...e,
        type,
        size: body.length,
      }),
    );
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const tar = Buffer.concat(parts);
  return gzip ? gzipSync(tar) : tar;
}

export function tempDir(label: string): { dir: string; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `paas-${label}-`));
  return { dir, cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
}

/** The diff_id of a layer blob: sha256 of its uncompressed tar. */
export function diffIdOf(blob: Buffer): Digest {
  return sha256(blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob);
}

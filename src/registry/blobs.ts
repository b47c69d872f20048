// Content-addressed blobs: `<images>/blobs/sha256/<hex>`. A blob is written to tmp/ while
// its sha256 is computed, compared with the expected digest, and renamed into place, so a
// path under blobs/ always holds exactly the bytes its name says (kill -9 leaves only tmp).
import { createHash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobNotFound, InvalidArgument, PayloadTooLarge } from '../errors/index.ts';
import {
  digestFromHash,
  digestHex,
  HashMeter,
  isDigest,
  parseDigest,
  type Digest,
} from './digest.ts';
import { scratchName } from '../files/index.ts';

export type BlobRange = { start: number; end?: number };

export function digestMismatch(
  expected: Digest,
  actual: Digest,
): InstanceType<typeof InvalidArgument> {
  return new InvalidArgument(`digest mismatch: expected ${expected}, content is ${actual}`, {
    code: 'DIGEST_INVALID',
    expected,
    actual,
  });
}

export class BlobStore {
  readonly dir: string;
  readonly tmpDir: string;

  constructor(imagesDir: string, tmpDir: string) {
    this.dir = path.join(imagesDir, 'blobs', 'sha256');
    this.tmpDir = tmpDir;
  }

  path(digest: Digest): string {
    return path.join(this.dir, digestHex(parseDigest(digest)));
  }

  async size(digest: Digest): Promise<number | null> {
    try {
      return (await fsp.stat(this.path(digest))).size;
    } catch {
      return null;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.size(digest)) !== null;
  }

  /** Streams `source` into the store, verifying `expected` when given. */
  async put(
    source: Readable | Buffer,
    expected?: Digest,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<{ digest: Digest; size: number }> {
    if (expected !== undefined) parseDigest(expected);
    if (Buffer.isBuffer(source)) {
      if (source.length > maxBytes)
        throw new PayloadTooLarge(`blob is larger than ${maxBytes} bytes`, { limit: maxBytes });
      const digest = digestFromHash(createHash('sha256').update(source));
      if (expected && expected !== digest) throw digestMismatch(expected, digest);
      if (await this.touchIfPresent(digest)) return { digest, size: source.length };
      const tmp = scratchName(this.tmpDir, 'blob');
      await fsp.writeFile(tmp, source);
      await this.adopt(tmp, digest);
      return { digest, size: source.length };
    }
    const hash = createHash('sha256');
    const meter = new HashMeter(
      hash,
      0,
      maxBytes,
      () => new PayloadTooLarge(`blob is larger than ${maxBytes} bytes`, { limit: maxBytes }),
    );
    const tmp = scratchName(this.tmpDir, 'blob');
    try {
      await pipeline(source, meter, fs.createWriteStream(tmp));
      const size = meter.bytes;
      const digest = digestFromHash(hash);
      if (expected && expected !== digest) throw digestMismatch(expected, digest);
      await this.adopt(tmp, digest);
      return { digest, size };
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }

  /** Renames a file whose digest the caller has computed into place (or drops it if present). */
  async adopt(tmpFile: string, digest: Digest): Promise<void> {
    const dest = this.path(digest);
    if (await this.touchIfPresent(digest)) {
      await fsp.rm(tmpFile, { force: true });
      return;
    }
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.chmod(tmpFile, 0o644);
    await fsp.rename(tmpFile, dest);
  }

  // An existing blob gets a fresh mtime: GC's grace period then protects it while the
  // manifest that will reference it is being written.
  private async touchIfPresent(digest: Digest): Promise<boolean> {
    const now = new Date();
    try {
      await fsp.utimes(this.path(digest), now, now);
      return true;
    } catch {
      return false;
    }
  }

  async open(digest: Digest, range?: BlobRange): Promise<Readable> {
    const p = this.path(digest);
    let handle: fs.promises.FileHandle;
    try {
      handle = await fsp.open(p, 'r');
    } catch {
      throw new BlobNotFound(`blob ${digest} not found`, { digest });
    }
    return handle.createReadStream({
      highWaterMark: 1024 * 1024,
      ...(range ? { start: range.start, end: range.end } : {}),
    });
  }

  async read(digest: Digest, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
    const size = await this.size(digest);
    if (size === null) throw new BlobNotFound(`blob ${digest} not found`, { digest });
    if (size > maxBytes)
      throw new PayloadTooLarge(`blob ${digest} is larger than ${maxBytes} bytes`, { digest });
    const data = await fsp.readFile(this.path(digest));
    return data;
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await fsp.unlink(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async list(): Promise<{ digest: Digest; size: number; mtimeMs: number }[]> {
    const out: { digest: Digest; size: number; mtimeMs: number }[] = [];
    for (const name of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const st = await fsp.stat(path.join(this.dir, name)).catch(() => null);
      if (st) out.push({ digest, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }
}

// Blob upload sessions for the registry server (OCI distribution spec §Pushing blobs): a
// session is a file in `<images>/uploads/<uuid>` that PATCH requests append to. The running
// sha256 is kept in memory so finishing a 1 GB upload does not re-read it; after a restart
// it is recomputed from the file. Finishing verifies the digest and renames the file into
// the blob store (same filesystem), so nothing is copied twice.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobNotFound, InvalidArgument, PayloadTooLarge } from '../errors/index.ts';
import { digestFromHash, HashMeter, type Digest } from './digest.ts';
import { digestMismatch, type BlobStore } from './blobs.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class UploadArea {
  readonly dir: string;
  private readonly blobs: BlobStore;
  private readonly state = new Map<string, { hash: Hash; size: number }>();
  private readonly maxBytes: number;

  constructor(imagesDir: string, blobs: BlobStore, maxBytes: number) {
    this.dir = path.join(imagesDir, 'uploads');
    this.blobs = blobs;
    this.maxBytes = maxBytes;
  }

  private file(uuid: string): string {
    if (!UUID.test(uuid))
      throw new BlobNotFound(`upload ${uuid.slice(0, 64)} not found`, {
        code: 'BLOB_UPLOAD_UNKNOWN',
      });
    return path.join(this.dir, uuid);
  }

  async start(): Promise<string> {
    const uuid = randomUUID();
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.writeFile(this.file(uuid), '');
    this.state.set(uuid, { hash: createHash('sha256'), size: 0 });
    return uuid;
  }

  private async session(uuid: string): Promise<{ hash: Hash; size: number }> {
    const known = this.state.get(uuid);
    if (known) return known;
    const file = this.file(uuid);
    if ((await fsp.stat(file).catch(() => null)) === null)
      throw new BlobNotFound(`upload ${uuid} not found`, { code: 'BLOB_UPLOAD_UNKNOWN' });
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of fs.createReadStream(file)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const s = { hash, size };
    this.state.set(uuid, s);
    return s;
  }

  async size(uuid: string): Promise<number> {
    return (await this.session(uuid)).size;
  }

  /** Appends `source`; `offset` (from Content-Range) must equal the current size. */
  async append(uuid: string, source: Readable, offset?: number): Promise<number> {
    const s = await this.session(uuid);
    if (offset !== undefined && offset !== s.size) {
      throw new InvalidArgument(
        `upload ${uuid} is at ${s.size} bytes, the chunk starts at ${offset}`,
        { code: 'RANGE_INVALID', size: s.size },
      );
    }
    const limit = this.maxBytes;
    // Hash a copy so a failed request cannot leave the in-memory hash ahead of the file.
    const hash = s.hash.copy();
    const out = fs.createWriteStream(this.file(uuid), { flags: 'a' });
    const meter = new HashMeter(
      hash,
      s.size,
      limit,
      () =>
        new PayloadTooLarge(`upload exceeds the ${limit}-byte limit`, {
          code: 'SIZE_INVALID',
          limit,
        }),
    );
    try {
      await pipeline(source, meter, out);
    } catch (err) {
      // The file may now be longer than the hash: forget the state, it is rebuilt from disk.
      this.state.delete(uuid);
      await fsp.truncate(this.file(uuid), s.size).catch(() => undefined);
      throw err;
    }
    s.hash = hash;
    s.size = meter.bytes;
    return meter.bytes;
  }

  /** Verifies the upload against `digest` and moves it into the blob store. */
  async finish(uuid: string, digest: Digest): Promise<{ digest: Digest; size: number }> {
    const s = await this.session(uuid);
    const actual = digestFromHash(s.hash.copy());
    if (actual !== digest) throw digestMismatch(digest, actual);
    await this.blobs.adopt(this.file(uuid), digest);
    this.state.delete(uuid);
    return { digest, size: s.size };
  }

  async cancel(uuid: string): Promise<void> {
    const file = this.file(uuid);
    if ((await fsp.stat(file).catch(() => null)) === null)
      throw new BlobNotFound(`upload ${uuid} not found`, { code: 'BLOB_UPLOAD_UNKNOWN' });
    this.state.delete(uuid);
    await fsp.rm(file, { force: true });
  }

  /** Removes sessions idle for longer than `olderThanMs` (GC). */
  async sweep(olderThanMs: number, dryRun: boolean): Promise<number> {
    let freed = 0;
    for (const name of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      const st = await fsp.stat(path.join(this.dir, name)).catch(() => null);
      if (!st || Date.now() - st.mtimeMs < olderThanMs) continue;
      freed += st.size;
      if (!dryRun) {
        this.state.delete(name);
        await fsp.rm(path.join(this.dir, name), { force: true });
      }
    }
    return freed;
  }
}

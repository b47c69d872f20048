// Content digests (OCI image spec, descriptor.md §Digests). Only sha256 is accepted: it is
// the one algorithm every registry and client must support, and a single algorithm keeps
// the blob store's path layout (`blobs/sha256/<hex>`) the only layout.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { InvalidArgument } from '../errors/index.ts';

export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isDigest(raw: unknown): raw is Digest {
  return typeof raw === 'string' && DIGEST.test(raw);
}

export function parseDigest(raw: unknown): Digest {
  if (!isDigest(raw)) {
    throw new InvalidArgument(
      `invalid digest ${JSON.stringify(String(raw).slice(0, 100))}: expected sha256:<64 hex>`,
      { digest: raw ?? null },
    );
  }
  return raw;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function digestFromHash(hash: { digest(enc: 'hex'): string }): Digest {
  return `sha256:${hash.digest('hex')}` as Digest;
}

/**
 * A pass-through that feeds every chunk to `hash` and counts bytes from `start`, failing
 * with `tooLarge()` once the count passes `limit`: the one guard for blob writes and uploads.
 */
export class HashMeter extends Transform {
  bytes: number;
  private readonly hash: Hash;
  private readonly limit: number;
  private readonly tooLarge: () => Error;

  constructor(hash: Hash, start: number, limit: number, tooLarge: () => Error) {
    super();
    this.hash = hash;
    this.bytes = start;
    this.limit = limit;
    this.tooLarge = tooLarge;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return cb(this.tooLarge());
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

// Pulling images from registries (Docker Hub, its mirrors, private registries) into the store,
// as `docker pull` does. Distribution spec §Pulling: the manifest first (an index or manifest
// list picks the host's platform), then the config and layer blobs, each verified against its
// digest before it is kept (a mismatch is refused and its bytes dropped); the manifest is
// written last, so a failed pull leaves no image behind. Layers download in parallel and
// resume with a `Range` request after a broken connection. Auth is the Docker token flow
// (client.ts's challenge parser). Every network wait is bounded, so an unreachable registry
// fails in seconds with one line naming the image and the registry.
import { createHash, type Hash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import path from 'node:path';
import {
  ImageNotFound,
  InvalidArgument,
  PaasError,
  RegistryUnavailable,
  Unauthorized,
} from '../errors/index.ts';
import { digestMismatch } from './blobs.ts';
import { CredentialStore, type Credential } from './credentials.ts';
import { digestFromHash, isDigest, parseDigest, sha256, type Digest } from './digest.ts';
import { writeFileAtomic } from './fsutil.ts';
import {
  hostPlatform,
  MANIFEST_ACCEPT,
  parseManifest,
  type Descriptor,
  type ImageManifest,
} from './media.ts';
import {
  displayRef,
  localRepo,
  parseImageRef,
  registryOf,
  type ImageRef,
  type RepoName,
} from './ref.ts';
import { networkReason, Session } from './session.ts';
import type { EnsureOptions, Image, ImageStore, PulledRecord, Pulls } from './types.ts';

export type { EnsureOptions, PulledRecord };

export type PullerOptions = {
  /** Mirrors of Docker Hub (`--registry-mirror`), tried in order before Docker Hub itself. */
  mirrors?: readonly string[];
  /** Seconds-scale bound on connecting and on the wait for response headers (default 10 s). */
  connectTimeoutMs?: number;
  /** A blob download with no byte for this long is broken (default 60 s). */
  idleTimeoutMs?: number;
  /** Layers downloaded at once (default 3, as Docker). */
  concurrency?: number;
};

const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_CONFIG = 16 * 1024 * 1024;
const RESUME_ATTEMPTS = 4;

type Fetched = { bytes: Buffer; mediaType: string; digest: Digest };

export class Puller implements Pulls {
  private readonly mirrors: readonly string[];
  private readonly credentials: CredentialStore;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly concurrency: number;
  private readonly recordsDir: string;
  /**
   * Connection pool of blob downloads: bounded connect, headers and idle-body waits. Made at
   * the first blob download: undici is not loaded by a daemon that pulls nothing.
   */
  private pool: Promise<Dispatcher> | undefined;
  /** Pulls in flight by local reference: concurrent builds of one FROM share one pull. */
  private readonly inflight = new Map<string, Promise<Image>>();

  constructor(dataDir: string, opts: PullerOptions = {}) {
    this.mirrors = opts.mirrors ?? [];
    this.credentials = new CredentialStore(dataDir);
    this.timeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.idleMs = opts.idleTimeoutMs ?? 60_000;
    this.concurrency = Math.max(1, opts.concurrency ?? 3);
    this.recordsDir = path.join(dataDir, 'images', 'pulled');
  }

  private dispatcher(): Promise<Dispatcher> {
    // Registries on object storage (Docker Hub) answer blob GETs with a redirect to a CDN;
    // undici drops the Authorization header when a redirect leaves the origin.
    return (this.pool ??= import('undici').then(({ Agent, interceptors }) =>
      new Agent({
        connect: { timeout: this.timeoutMs },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.idleMs,
      }).compose(interceptors.redirect({ maxRedirections: 5 })),
    ));
  }

  /** The endpoints to try for `ref`, in order: mirrors first for Docker Hub names. */
  private async sessions(ref: ImageRef): Promise<Session[]> {
    const reg = registryOf(ref);
    const out: Session[] = [];
    if (ref.domain === null) {
      for (const m of this.mirrors) {
        const host = new URL(m).host;
        out.push(
          new Session(m, `mirror ${host}`, await this.credentials.get(host), this.timeoutMs),
        );
      }
    }
    out.push(
      new Session(
        reg.url,
        reg.host === 'docker.io' ? 'registry-1.docker.io' : reg.host,
        await this.credentials.get(reg.host),
        this.timeoutMs,
      ),
    );
    return out;
  }

  /** The image `ref` names: the local one when there is one, else pulled (once). */
  async ensure(
    store: ImageStore,
    raw: ImageRef | string,
    opts: EnsureOptions = {},
  ): Promise<Image> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    try {
      return await store.resolveImage(ref);
    } catch (err) {
      if (!(err instanceof ImageNotFound)) throw err;
    }
    if (ref.digest !== null) {
      // A digest pull of an index kept only the platform manifest: its record says which.
      const rec = await this.record(ref);
      if (rec !== null) {
        const img = await store
          .resolveImage(storedRef(rec.repository, rec.digest))
          .catch(() => null);
        if (img !== null) return img;
      }
    }
    return this.pull(store, ref, opts);
  }

  /** Pulls `ref` from its registry (refreshing a tag), whatever the store holds. */
  pull(store: ImageStore, raw: ImageRef | string, opts: EnsureOptions = {}): Promise<Image> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    const key = `${localRepo(ref)}:${ref.tag ?? ''}@${ref.digest ?? ''}`;
    const running = this.inflight.get(key);
    if (running) return running;
    const p = this.pullOnce(store, ref, opts).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async pullOnce(store: ImageStore, ref: ImageRef, opts: EnsureOptions): Promise<Image> {
    const failures: string[] = [];
    let lastErr: unknown = null;
    for (const s of await this.sessions(ref)) {
      try {
        return await this.pullFrom(s, store, ref, opts.onProgress ?? (() => undefined));
      } catch (err) {
        // A digest mismatch is an attack or a broken registry: never fall back past it.
        if (err instanceof PaasError && err.details.code === 'DIGEST_INVALID') throw err;
        if (!(err instanceof PaasError)) throw err;
        lastErr = err;
        failures.push(err.message);
      }
    }
    const msg = `cannot pull ${displayRef(ref)}: ${failures.join('; ')}`;
    if (lastErr instanceof ImageNotFound) throw new ImageNotFound(msg, { ref: displayRef(ref) });
    if (lastErr instanceof Unauthorized) throw new Unauthorized(msg, { ref: displayRef(ref) });
    throw new RegistryUnavailable(msg, { ref: displayRef(ref) });
  }

  private async manifest(s: Session, repo: string, reference: string): Promise<Fetched> {
    const res = await s.get(`/v2/${repo}/manifests/${reference}`, `repository:${repo}:pull`, {
      accept: MANIFEST_ACCEPT,
    });
    if (!res.ok) return s.fail(res, `manifest ${repo}:${reference}`);
    const len = Number(res.headers.get('content-length') ?? 0);
    if (len > MAX_MANIFEST) {
      await res.body?.cancel();
      throw new InvalidArgument(`${s.label}: manifest ${repo}:${reference} is too large`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_MANIFEST)
      throw new InvalidArgument(`${s.label}: manifest ${repo}:${reference} is too large`);
    const digest = sha256(bytes);
    // By digest the bytes must hash to it; by tag, to what the registry says it served.
    const claimed = isDigest(reference) ? reference : res.headers.get('docker-content-digest');
    if (claimed && isDigest(claimed) && claimed !== digest) throw digestMismatch(claimed, digest);
    return {
      bytes,
      mediaType: res.headers.get('content-type')?.split(';')[0]?.trim() ?? '',
      digest,
    };
  }

  private async pullFrom(
    s: Session,
    store: ImageStore,
    ref: ImageRef,
    progress: (line: string) => void,
  ): Promise<Image> {
    const repo = ref.repository;
    const shown = displayRef(ref);
    const reference = ref.digest ?? (ref.tag as string);
    const top = await this.manifest(s, repo, reference);
    let m = top;
    let parsed = parseManifest(m.bytes, m.mediaType);
    for (let depth = 0; parsed.kind === 'index'; depth++) {
      if (depth > 2) throw new InvalidArgument(`${shown}: image indexes nest too deeply`);
      const pick = pickPlatform(parsed.index.manifests);
      if (!pick) {
        const have = parsed.index.manifests
          .map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : '?'))
          .join(', ');
        const want = hostPlatform();
        throw new ImageNotFound(
          `${shown} on ${s.label} has no ${want.os}/${want.architecture} image (it has ${have})`,
        );
      }
      m = await this.manifest(s, repo, pick.digest);
      parsed = parseManifest(m.bytes, m.mediaType);
    }
    if (parsed.kind !== 'manifest')
      throw new InvalidArgument(`${shown}: ${s.label} served no image manifest`);
    const manifest = parsed.manifest;

    // What this pull adds is removed again if it fails: a refused pull keeps nothing.
    const added: Digest[] = [];
    try {
      return await this.fetchImage(s, store, ref, top, m, manifest, added, progress);
    } catch (err) {
      for (const d of added) await store.deleteBlob(d);
      throw err;
    }
  }

  private async fetchImage(
    s: Session,
    store: ImageStore,
    ref: ImageRef,
    top: Fetched,
    m: Fetched,
    manifest: ImageManifest,
    added: Digest[],
    progress: (line: string) => void,
  ): Promise<Image> {
    const repo = ref.repository;
    const shown = displayRef(ref);
    const scope = `repository:${repo}:pull`;
    // The config is small: read whole and verified by putBlob.
    if (!(await store.hasBlob(manifest.config.digest))) {
      added.push(manifest.config.digest);
      if (manifest.config.size > MAX_CONFIG)
        throw new InvalidArgument(`${shown}: image config is too large`);
      const res = await s.get(`/v2/${repo}/blobs/${manifest.config.digest}`, scope);
      if (!res.ok) return s.fail(res, `config of ${shown}`);
      await store.putBlob(Buffer.from(await res.arrayBuffer()), manifest.config.digest);
    }

    const layers = manifest.layers;
    const total = layers.length;
    let done = 0;
    let bytes = 0;
    let lastLine = 0;
    const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
    const report = (force: boolean) => {
      const now = Date.now();
      if (!force && now - lastLine < 1000) return;
      lastLine = now;
      progress(`Pulling ${shown}: ${done}/${total} layers, ${mb(bytes)}`);
    };
    progress(`Pulling ${shown} from ${s.label}`);
    report(true);
    const queue = [...layers];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        if (!(await store.hasBlob(d.digest)))
          await this.download(s, store, repo, d, added, (n) => {
            bytes += n;
            report(false);
          });
        done++;
        report(true);
      }
    };
    const workers = Array.from({ length: Math.min(this.concurrency, Math.max(1, total)) }, worker);
    const results = await Promise.allSettled(workers);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    const local = localRepo(ref);
    await store.putManifest(local, m.digest, m.bytes, m.mediaType);
    if (ref.tag !== null && ref.digest === null)
      await store.putManifest(local, ref.tag, m.bytes, m.mediaType);
    await this.writeRecord({
      ref: `${ref.domain ? `${ref.domain}/` : ''}${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`,
      repository: local,
      tag: ref.digest === null ? ref.tag : null,
      reference: ref.digest ?? top.digest,
      digest: m.digest,
      registry: s.label,
      pulledAt: new Date().toISOString(),
    });
    progress(`Pulled ${shown}: ${total}/${total} layers, ${mb(bytes)} (${m.digest.slice(0, 19)})`);
    return store.resolveImage(storedRef(local, m.digest));
  }

  /**
   * One blob into the store: streamed to a tmp file while hashed, resumed with `Range` after a
   * broken connection, verified, then renamed into place. A mismatch deletes the tmp file.
   */
  private async download(
    s: Session,
    store: ImageStore,
    repo: string,
    d: Descriptor,
    added: Digest[],
    count: (n: number) => void,
  ): Promise<void> {
    const tmp = store.tmpFile(`pull-${d.digest.slice(7, 19)}`);
    let hash: Hash = createHash('sha256');
    let have = 0;
    let lastErr: unknown = null;
    try {
      for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt++) {
        try {
          const res = await s.stream(
            await this.dispatcher(),
            `/v2/${repo}/blobs/${d.digest}`,
            `repository:${repo}:pull`,
            have > 0 ? { range: `bytes=${have}-` } : {},
          );
          if (have > 0 && res.statusCode === 200) {
            // The registry ignored the Range: start over.
            count(-have);
            have = 0;
            hash = createHash('sha256');
          }
          if (res.statusCode !== 200 && res.statusCode !== 206) {
            await res.body.dump().catch(() => undefined);
            return await s.failStatus(res.statusCode, `layer ${d.digest}`);
          }
          const meter = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              hash.update(chunk);
              have += chunk.length;
              count(chunk.length);
              if (have > d.size)
                cb(
                  new InvalidArgument(
                    `digest mismatch: ${d.digest} is ${d.size} bytes, ${s.label} served more`,
                    { code: 'DIGEST_INVALID', expected: d.digest },
                  ),
                );
              else cb(null, chunk);
            },
          });
          await pipeline(
            res.body,
            meter,
            fs.createWriteStream(tmp, { flags: have > 0 ? 'a' : 'w' }),
          );
          const digest = digestFromHash(hash);
          if (digest !== parseDigest(d.digest)) throw digestMismatch(d.digest, digest);
          added.push(digest);
          await store.adoptBlob(tmp, digest);
          return;
        } catch (err) {
          if (err instanceof PaasError) throw err;
          lastErr = err;
        }
      }
      throw new RegistryUnavailable(
        `layer ${d.digest}: ${s.label}: ${networkReason(lastErr)} (after ${RESUME_ATTEMPTS} attempts)`,
        { registry: s.label },
      );
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  private recordPath(localRef: string): string {
    return path.join(
      this.recordsDir,
      `${createHash('sha256').update(localRef).digest('hex').slice(0, 32)}.json`,
    );
  }

  private async writeRecord(rec: PulledRecord): Promise<void> {
    await fsp.mkdir(this.recordsDir, { recursive: true });
    const tmpDir = path.join(path.dirname(this.recordsDir), 'tmp');
    const body = JSON.stringify(rec);
    if (rec.tag !== null)
      await writeFileAtomic(tmpDir, this.recordPath(`${rec.repository}:${rec.tag}`), body);
    await writeFileAtomic(tmpDir, this.recordPath(`${rec.repository}@${rec.reference}`), body);
  }

  private async record(ref: ImageRef): Promise<PulledRecord | null> {
    const key = `${localRepo(ref)}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`;
    try {
      return JSON.parse(await fsp.readFile(this.recordPath(key), 'utf8')) as PulledRecord;
    } catch {
      return null;
    }
  }

  /** Every pull record (images GC decides which pulled images are still needed). */
  async records(): Promise<(PulledRecord & { file: string })[]> {
    const out: (PulledRecord & { file: string })[] = [];
    for (const name of await fsp.readdir(this.recordsDir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.recordsDir, name);
      try {
        out.push({ ...(JSON.parse(await fsp.readFile(file, 'utf8')) as PulledRecord), file });
      } catch {
        // A torn record is no record.
      }
    }
    return out;
  }

  /** Forgets a record (its image was untagged by GC). */
  async forget(file: string): Promise<void> {
    await fsp.rm(file, { force: true });
  }

  /** `registry:login`: checks the credentials against the registry, then keeps them (0600). */
  async login(host: string, cred: Credential): Promise<void> {
    const ref = parseImageRef(host === 'docker.io' ? 'library/hello-world' : `${host}/x`);
    const reg = registryOf(ref);
    const s = new Session(reg.url, reg.host, cred, this.timeoutMs);
    // `docker login`: GET /v2/ answered with the credentials (a Bearer challenge is answered
    // with a token request without scope, which a token server only grants to valid users).
    const res = await s.get('/v2/', '');
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 401 || res.status === 403)
      throw new Unauthorized(`login to ${host} failed: ${res.status} for user ${cred.username}`);
    if (!res.ok)
      throw new RegistryUnavailable(`login to ${host}: ${reg.host} answered ${res.status}`);
    await this.credentials.set(reg.host, cred);
  }

  async logout(host: string): Promise<boolean> {
    return this.credentials.remove(host);
  }
}

/**
 * A stored repository by digest, built directly: a host-prefixed local name
 * (`127.0.0.1__5000/team/base`) would read as a registry host if parsed from text.
 */
function storedRef(repository: string, digest: Digest): ImageRef {
  return Object.freeze({
    domain: null,
    repository: repository as RepoName,
    tag: null,
    digest,
  }) as ImageRef;
}

/**
 * The index entry for this host: its os/architecture (Docker's rule), skipping attestation
 * manifests (`unknown/unknown`); an entry without a platform only when nothing matches.
 */
function pickPlatform(entries: readonly Descriptor[]): Descriptor | undefined {
  const want = hostPlatform();
  return (
    entries.find(
      (d) => d.platform?.os === want.os && d.platform.architecture === want.architecture,
    ) ?? entries.find((d) => !d.platform)
  );
}

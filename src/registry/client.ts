// A distribution-spec client (global fetch) that pulls images into the store and pushes
// them out, so an operator can point FROM resolution at a mirror registry of their own.
// Auth follows the Docker token flow (distribution docs, "Token Authentication
// Specification"): on a 401, a `Basic` challenge is answered with the credentials, a
// `Bearer realm=…,service=…,scope=…` challenge by fetching a token from the realm (with the
// credentials, if any) and retrying with it.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ImageNotFound, InvalidArgument, Unauthorized, Unsupported } from '../errors/index.ts';
import { sha256, type Digest } from './digest.ts';
import { hostPlatform, MANIFEST_ACCEPT, parseManifest } from './media.ts';
import { references } from './manifests.ts';
import { candidateRepos, formatImageRef, parseImageRef, type ImageRef } from './ref.ts';
import type { Image, ImageSource, ImageStore } from './types.ts';

export type RegistryClientOptions = {
  /** Base URL, e.g. `https://mirror.example.com` or `http://127.0.0.1:5000`. */
  url: string;
  username?: string;
  password?: string;
};

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const sp = header.indexOf(' ');
  const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(sp + 1).matchAll(/(\w+)="([^"]*)"/g))
    params[m[1] as string] = m[2] as string;
  return { scheme, params };
}

function basicHeader(cred: { username?: string; password?: string } | null): string | null {
  if (!cred || cred.password === undefined) return null;
  return `Basic ${Buffer.from(`${cred.username ?? 'paas'}:${cred.password}`).toString('base64')}`;
}

/**
 * The Authorization header that answers a 401's `WWW-Authenticate`: `Basic` with the
 * credentials; `Bearer realm=…,service=…,scope=…` with a token from the realm, asked with
 * the credentials when there are any (anonymous otherwise). An empty `scope` asks for no
 * scope, as `docker login` does to check credentials.
 */
export async function answerChallenge(
  challenge: string,
  scope: string,
  cred: { username?: string; password?: string } | null,
  label: string,
  timeoutMs = 30_000,
): Promise<string> {
  const { scheme, params } = parseChallenge(challenge);
  const b = basicHeader(cred);
  if (scheme === 'basic') {
    if (!b)
      throw new Unauthorized(`${label} requires credentials; log in with \`paas registry:login\``);
    return b;
  }
  if (scheme !== 'bearer' || !params.realm)
    throw new Unsupported(`${label}: unsupported auth challenge ${challenge.slice(0, 200)}`);
  const url = new URL(params.realm);
  if (params.service) url.searchParams.set('service', params.service);
  const sc = params.scope ?? scope;
  if (sc) url.searchParams.set('scope', sc);
  if (cred?.username) url.searchParams.set('account', cred.username);
  const res = await fetch(url, {
    headers: b ? { authorization: b } : {},
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new Unauthorized(`${label}: token request to ${url.origin} failed with ${res.status}`);
  }
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Unauthorized(`${label}: token endpoint returned no token`);
  return `Bearer ${token}`;
}

export class RegistryClient implements ImageSource {
  readonly description: string;
  private readonly base: string;
  private readonly opts: RegistryClientOptions;
  /** Authorization header per repository scope, learned from challenges. */
  private readonly auth = new Map<string, string>();

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.base = opts.url.replace(/\/+$/, '');
    this.description = `registry ${this.base}`;
  }

  private answer(challenge: string, scope: string): Promise<string> {
    return answerChallenge(challenge, scope, this.opts, this.base);
  }

  /** A request with auth; `body` must be replayable (a function) if it may be retried. */
  private async request(
    method: string,
    pathOrUrl: string,
    scope: string,
    init: {
      headers?: Record<string, string>;
      body?: () => RequestInit['body'];
      size?: number;
    } = {},
  ): Promise<Response> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${this.base}${pathOrUrl}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers: Record<string, string> = { ...init.headers };
      const a = this.auth.get(scope);
      if (a) headers.authorization = a;
      if (init.size !== undefined) headers['content-length'] = String(init.size);
      const body = init.body?.();
      const res = await fetch(url, {
        method,
        headers,
        body,
        ...(body instanceof Readable ||
        (body && typeof body === 'object' && Symbol.asyncIterator in body)
          ? { duplex: 'half' }
          : {}),
      } as RequestInit);
      const challenge = res.headers.get('www-authenticate');
      if (res.status !== 401 || !challenge || attempt > 0) return res;
      await res.body?.cancel();
      this.auth.set(scope, await this.answer(challenge, scope));
    }
    throw new Unauthorized(`${this.base}: authentication failed`);
  }

  private async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => '');
    if (res.status === 404)
      throw new ImageNotFound(`${what}: not found on ${this.base}`, { status: 404 });
    if (res.status === 401 || res.status === 403)
      throw new Unauthorized(`${what}: ${res.status} from ${this.base}`);
    throw new InvalidArgument(
      `${what}: ${this.base} answered ${res.status} ${text.slice(0, 300)}`,
      { status: res.status },
    );
  }

  private async getManifest(
    repo: string,
    reference: string,
  ): Promise<{ bytes: Buffer; mediaType: string; digest: Digest }> {
    const scope = `repository:${repo}:pull`;
    const res = await this.request('GET', `/v2/${repo}/manifests/${reference}`, scope, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (!res.ok) return this.fail(res, `manifest ${repo}:${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new InvalidArgument(`${this.base} served manifest ${digest} for ${reference}`);
    return { bytes, mediaType: res.headers.get('content-type')?.split(';')[0] ?? '', digest };
  }

  private async fetchBlob(store: ImageStore, repo: string, digest: Digest): Promise<void> {
    if (await store.hasBlob(digest)) return;
    const res = await this.request('GET', `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull`);
    if (!res.ok || !res.body) return this.fail(res, `blob ${digest}`);
    await store.putBlob(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), digest);
  }

  /** Pulls `ref` (its host part is ignored: this client's registry is asked) into the store. */
  async pull(store: ImageStore, raw: ImageRef | string): Promise<Image> {
    const ref = typeof raw === 'string' ? parseImageRef(raw) : raw;
    let repo: string = ref.repository;
    let m: { bytes: Buffer; mediaType: string; digest: Digest } | null = null;
    for (const candidate of candidateRepos(ref)) {
      try {
        m = await this.getManifest(candidate, ref.digest ?? (ref.tag as string));
        repo = candidate;
        break;
      } catch (err) {
        if (!(err instanceof ImageNotFound) || candidate === candidateRepos(ref).at(-1)) throw err;
      }
    }
    if (!m) throw new ImageNotFound(`${formatImageRef(ref)} not found on ${this.base}`);
    let parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind === 'index') {
      const want = hostPlatform();
      const pick = parsed.index.manifests.find(
        (d) => d.platform?.os === want.os && d.platform.architecture === want.architecture,
      );
      if (!pick)
        throw new ImageNotFound(
          `${formatImageRef(ref)} on ${this.base} has no ${want.os}/${want.architecture} image`,
        );
      m = await this.getManifest(repo, pick.digest);
      parsed = parseManifest(m.bytes, m.mediaType);
    }
    for (const d of references(parsed)) await this.fetchBlob(store, repo, d.digest);
    await store.putManifest(repo, m.digest, m.bytes, m.mediaType);
    if (ref.tag && !ref.digest) await store.putManifest(repo, ref.tag, m.bytes, m.mediaType);
    return store.resolveImage({
      ...ref,
      domain: null,
      repository: repo,
      digest: m.digest,
    } as ImageRef);
  }

  private async pushBlob(store: ImageStore, repo: string, digest: Digest): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const head = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, scope);
    if (head.ok) return;
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`, scope, { size: 0 });
    if (start.status !== 202 && start.status !== 201)
      return this.fail(start, `upload of ${digest}`);
    const location = start.headers.get('location');
    if (!location) throw new InvalidArgument(`${this.base} started an upload without a Location`);
    const put = new URL(location, this.base);
    put.searchParams.set('digest', digest);
    const size = await store.blobSize(digest);
    const res = await this.request('PUT', put.toString(), scope, {
      headers: { 'content-type': 'application/octet-stream' },
      body: () => fs.createReadStream(store.blobPath(digest)) as unknown as RequestInit['body'],
      size: size ?? 0,
    });
    if (res.status !== 201) return this.fail(res, `upload of ${digest}`);
    await res.body?.cancel();
  }

  /** Pushes the local image `localRef` to this registry as `remoteRef` (default: same name). */
  async push(store: ImageStore, localRef: string, remoteRef?: string): Promise<Digest> {
    const local = parseImageRef(localRef);
    const remote = parseImageRef(remoteRef ?? localRef);
    const stored = await store.findManifest(local);
    const pushTree = async (bytes: Buffer, mediaType: string, reference: string): Promise<void> => {
      const parsed = parseManifest(bytes, mediaType);
      for (const d of references(parsed)) {
        if (parsed.kind === 'index')
          await pushTree(await store.readBlob(d.digest), d.mediaType, d.digest);
        else await this.pushBlob(store, remote.repository, d.digest);
      }
      const res = await this.request(
        'PUT',
        `/v2/${remote.repository}/manifests/${reference}`,
        `repository:${remote.repository}:pull,push`,
        {
          headers: { 'content-type': mediaType },
          body: () => new Uint8Array(bytes),
        },
      );
      if (res.status !== 201) return this.fail(res, `manifest ${remote.repository}:${reference}`);
      await res.body?.cancel();
    };
    await pushTree(stored.bytes, stored.mediaType, remote.digest ?? (remote.tag as string));
    return stored.digest;
  }
}

// The OCI distribution API (distribution-spec v1.1 §Endpoints) over the image store, for the
// daemon to mount at `/v2/` on the API port. Pull: manifests by tag or digest, blobs with
// HEAD and single byte ranges. Push: monolithic (`POST ?digest=`), chunked (POST, PATCH…,
// PUT ?digest=) and cross-repository mount (`POST ?mount=&from=`), every digest verified.
// Tags list and catalog paginate with `n`/`last` and a `Link: <…>; rel="next"` header.
// Auth is HTTP Basic with the token as password; a 401 carries `WWW-Authenticate: Basic`,
// which Docker, skopeo and containerd answer by resending with credentials.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import {
  InvalidArgument,
  NotFound,
  PaasError,
  PayloadTooLarge,
  Unauthorized,
  Unsupported,
  type ErrorDetails,
} from '../errors/index.ts';
import { isDigest, parseDigest, type Digest } from './digest.ts';
import { isRepoName } from './ref.ts';
import type { ImageStore } from './types.ts';

export type RegistryHandlerOptions = {
  store: ImageStore;
  /** A yes/no check of the credentials, before anything else (tests, the bench). */
  authenticate?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /**
   * The daemon's scoped check (issue 19): called once the repository is known (`null` for
   * `/v2/` itself, `*` for the catalog) with whether the request writes; throws Unauthorized
   * (401) or Forbidden (403, the spec's DENIED) to refuse.
   */
  authorize?: (req: IncomingMessage, access: { repo: string | null; push: boolean }) => void;
  realm: string;
  maxManifestBytes?: number;
};

type Req = IncomingMessage & { originalUrl?: string };
type Handler = (req: Req, res: ServerResponse, next?: (err?: unknown) => void) => void;

/** The password of an `Authorization: Basic` header (any username), or null. */
export function basicAuthPassword(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return null;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : null;
}

const STATUS_BY_CODE = {
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  NAME_INVALID: 400,
  PAGINATION_NUMBER_INVALID: 400,
  TAG_INVALID: 400,
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 413,
  RANGE_INVALID: 416,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
} as const;
type SpecCode = keyof typeof STATUS_BY_CODE;

/**
 * A failure the distribution spec names: one of our typed errors (so the rest of paas sees a
 * PaasError like any other), with the spec's error code in its details.
 */
function specError(code: SpecCode, message: string, details: ErrorDetails = {}): PaasError {
  const status = STATUS_BY_CODE[code];
  const cls =
    status === 401
      ? Unauthorized
      : status === 404
        ? NotFound
        : status === 405
          ? Unsupported
          : status === 413
            ? PayloadTooLarge
            : InvalidArgument;
  return new cls(message, { ...details, code });
}

/** What goes on the wire: the spec's code and status for any thrown value. */
type WireError = { status: number; code: string; message: string; detail: unknown };

/** Maps our typed errors onto the spec's error codes; `area` picks the code for 400s. */
function toWireError(err: unknown, area: 'manifest' | 'blob' | 'name'): WireError {
  if (err instanceof PaasError) {
    const { code: specific, ...rest } = err.details;
    const code =
      (typeof specific === 'string' ? specific : null) ??
      (
        {
          InvalidImageRef: 'NAME_INVALID',
          ImageNotFound: 'MANIFEST_UNKNOWN',
          BlobNotFound: 'BLOB_UNKNOWN',
          PayloadTooLarge: 'SIZE_INVALID',
          Unauthorized: 'UNAUTHORIZED',
          Forbidden: 'DENIED',
          InvalidArgument: area === 'manifest' ? 'MANIFEST_INVALID' : 'DIGEST_INVALID',
        } as Record<string, string>
      )[err.code];
    if (code) {
      const status = (STATUS_BY_CODE as Record<string, number>)[code] ?? err.status;
      const detail = Object.keys(rest).length > 0 ? rest : null;
      return { status, code, message: err.message, detail };
    }
  }
  return { status: 500, code: 'UNKNOWN', message: 'internal error', detail: null };
}

function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body?: unknown,
): void {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(body === undefined
      ? { 'Content-Length': 0 }
      : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) }),
  });
  res.end(data);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit)
      throw new PayloadTooLarge(`manifest is larger than ${limit} bytes`, { code: 'SIZE_INVALID' });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function paginate(all: string[], url: URL, base: string): { items: string[]; link?: string } {
  const last = url.searchParams.get('last');
  const nRaw = url.searchParams.get('n');
  let items = last ? all.filter((x) => x > last) : all;
  if (nRaw === null) return { items };
  const n = Number(nRaw);
  if (!Number.isInteger(n) || n < 0)
    throw specError('PAGINATION_NUMBER_INVALID', `invalid n=${nRaw}`);
  const more = items.length > n;
  items = items.slice(0, n);
  const tail = items.at(-1);
  return more && tail
    ? { items, link: `<${base}?n=${n}&last=${encodeURIComponent(tail)}>; rel="next"` }
    : { items };
}

/** Parses `Range: bytes=a-b` (one range) against `size`; null when absent. */
function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === ''))
    throw specError('RANGE_INVALID', `unsupported range ${header}`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size)
    throw specError('RANGE_INVALID', `range ${header} is outside 0-${size - 1}`, {
      size,
    });
  return { start, end };
}

export function createRegistryHandler(opts: RegistryHandlerOptions): Handler {
  const { store } = opts;
  const maxManifest = opts.maxManifestBytes ?? 4 * 1024 * 1024;
  const common = { 'Docker-Distribution-API-Version': 'registry/2.0' };

  const uploadHeaders = (name: string, uuid: string, size: number) => ({
    ...common,
    Location: `/v2/${name}/blobs/uploads/${uuid}`,
    Range: `0-${Math.max(0, size - 1)}`,
    'Docker-Upload-UUID': uuid,
  });
  const blobCreated = (res: ServerResponse, name: string, digest: Digest) =>
    send(res, 201, {
      ...common,
      Location: `/v2/${name}/blobs/${digest}`,
      'Docker-Content-Digest': digest,
    });

  async function manifests(
    req: Req,
    res: ServerResponse,
    name: string,
    reference: string,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      const m = await store.getManifest(name, reference);
      res.writeHead(200, {
        ...common,
        'Content-Type': m.mediaType,
        'Content-Length': m.bytes.length,
        'Docker-Content-Digest': m.digest,
        ETag: `"${m.digest}"`,
      });
      res.end(method === 'HEAD' ? undefined : m.bytes);
    } else if (method === 'PUT') {
      const body = await readBody(req, maxManifest);
      const digest = await store.putManifest(name, reference, body, req.headers['content-type']);
      send(res, 201, {
        ...common,
        Location: `/v2/${name}/manifests/${digest}`,
        'Docker-Content-Digest': digest,
      });
    } else if (method === 'DELETE') {
      await store.deleteManifest(name, reference);
      send(res, 202, common);
    } else {
      throw specError('UNSUPPORTED', `${method} is not supported on manifests`);
    }
  }

  async function blobs(
    req: Req,
    res: ServerResponse,
    name: string,
    rawDigest: string,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (!isDigest(rawDigest)) throw specError('DIGEST_INVALID', `invalid digest ${rawDigest}`);
    const digest = rawDigest;
    if (method === 'DELETE') {
      if (!(await store.unlinkBlob(name, digest)))
        throw specError('BLOB_UNKNOWN', `blob ${digest} not in ${name}`);
      send(res, 202, common);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD')
      throw specError('UNSUPPORTED', `${method} is not supported on blobs`);
    const size = (await store.hasBlobLink(name, digest)) ? await store.blobSize(digest) : null;
    if (size === null) throw specError('BLOB_UNKNOWN', `blob ${digest} not in ${name}`);
    let range: { start: number; end: number } | null;
    try {
      range = parseRange(req.headers.range, size);
    } catch (err) {
      res.setHeader('Content-Range', `bytes */${size}`);
      throw err;
    }
    const headers = {
      ...common,
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Accept-Ranges': 'bytes',
    };
    if (range) {
      res.writeHead(206, {
        ...headers,
        'Content-Length': range.end - range.start + 1,
        'Content-Range': `bytes ${range.start}-${range.end}/${size}`,
      });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': size });
    }
    if (method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    await pipeline(await store.openBlob(digest, range ?? undefined), res);
  }

  async function startUpload(req: Req, res: ServerResponse, name: string, url: URL): Promise<void> {
    const mount = url.searchParams.get('mount');
    const from = url.searchParams.get('from');
    if (
      mount &&
      isDigest(mount) &&
      from &&
      isRepoName(from) &&
      (await store.hasBlobLink(from, mount)) &&
      (await store.hasBlob(mount))
    ) {
      req.resume();
      await store.linkBlob(name, mount);
      blobCreated(res, name, mount);
      return;
    }
    const digest = url.searchParams.get('digest');
    const uuid = await store.uploads.start();
    if (digest !== null) {
      const d = parseDigest(digest);
      try {
        await store.uploads.append(uuid, req);
        await store.uploads.finish(uuid, d);
      } catch (err) {
        await store.uploads.cancel(uuid).catch(() => undefined);
        throw err;
      }
      await store.linkBlob(name, d);
      blobCreated(res, name, d);
      return;
    }
    req.resume();
    send(res, 202, uploadHeaders(name, uuid, 0));
  }

  async function upload(
    req: Req,
    res: ServerResponse,
    name: string,
    uuid: string,
    url: URL,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      send(res, 204, uploadHeaders(name, uuid, await store.uploads.size(uuid)));
    } else if (method === 'PATCH') {
      const cr = req.headers['content-range'];
      const m = cr ? /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(cr) : null;
      if (cr && !m) throw specError('RANGE_INVALID', `invalid Content-Range ${cr}`);
      const size = await store.uploads.append(uuid, req, m ? Number(m[1]) : undefined);
      send(res, 202, uploadHeaders(name, uuid, size));
    } else if (method === 'PUT') {
      const digest = url.searchParams.get('digest');
      if (!digest || !isDigest(digest))
        throw specError('DIGEST_INVALID', 'PUT must name the blob with ?digest=sha256:…');
      await store.uploads.append(uuid, req);
      await store.uploads.finish(uuid, digest);
      await store.linkBlob(name, digest);
      blobCreated(res, name, digest);
    } else if (method === 'DELETE') {
      await store.uploads.cancel(uuid);
      send(res, 204, common);
    } else {
      throw specError('UNSUPPORTED', `${method} is not supported on uploads`);
    }
  }

  async function route(req: Req, res: ServerResponse): Promise<void> {
    const url = new URL(req.originalUrl ?? req.url ?? '/', 'http://registry.invalid');
    const p = url.pathname;
    const push = req.method !== 'GET' && req.method !== 'HEAD';
    const guard = (repo: string | null): void => {
      if (opts.authorize === undefined) return;
      try {
        opts.authorize(req, { repo, push });
      } catch (e) {
        req.resume();
        throw e;
      }
    };
    if (opts.authenticate !== undefined && !(await opts.authenticate(req))) {
      req.resume();
      throw specError(
        'UNAUTHORIZED',
        'authentication required: use any username and an API token as the password',
      );
    }
    if (p === '/v2' || p === '/v2/') {
      guard(null);
      send(res, 200, common, {});
      return;
    }
    const rest = p.startsWith('/v2/') ? p.slice(4) : p.replace(/^\//, '');
    let m: RegExpExecArray | null;
    if (rest === '_catalog') {
      guard('*');
      const { items, link } = paginate(await store.repositories(), url, '/v2/_catalog');
      send(res, 200, { ...common, ...(link ? { Link: link } : {}) }, { repositories: items });
      return;
    }
    m = /^(.+)\/(tags\/list|manifests\/[^/]+|blobs\/uploads\/?[^/]*|blobs\/[^/]+)$/.exec(rest);
    if (!m) throw specError('NAME_UNKNOWN', `no route for ${p}`);
    const name = m[1] as string;
    const tail = m[2] as string;
    guard(name);
    if (!isRepoName(name)) throw specError('NAME_INVALID', `invalid repository name ${name}`);
    if (tail === 'tags/list') {
      const { items, link } = paginate(await store.tags(name), url, `/v2/${name}/tags/list`);
      send(res, 200, { ...common, ...(link ? { Link: link } : {}) }, { name, tags: items });
    } else if (tail.startsWith('manifests/')) {
      await manifests(req, res, name, decodeURIComponent(tail.slice('manifests/'.length)));
    } else if (tail === 'blobs/uploads' || tail === 'blobs/uploads/') {
      if (req.method !== 'POST') throw specError('UNSUPPORTED', 'start an upload with POST');
      await startUpload(req, res, name, url);
    } else if (tail.startsWith('blobs/uploads/')) {
      await upload(req, res, name, tail.slice('blobs/uploads/'.length), url);
    } else {
      await blobs(req, res, name, decodeURIComponent(tail.slice('blobs/'.length)));
    }
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      const area = /\/manifests\//.test(req.url ?? '') ? 'manifest' : 'blob';
      const e = toWireError(err, area);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const headers: Record<string, string> = { ...common };
      // A refused body (too large, wrong range) was not read to its end: close the connection
      // rather than leave the client's unread bytes in front of its next request.
      if (!req.complete) headers.Connection = 'close';
      if (e.status === 401)
        headers['WWW-Authenticate'] = `Basic realm="${opts.realm.replace(/"/g, '')}"`;
      const contentRange = res.getHeader('Content-Range');
      if (typeof contentRange === 'string') headers['Content-Range'] = contentRange;
      if (req.method === 'HEAD') send(res, e.status, headers);
      else
        send(res, e.status, headers, {
          errors: [{ code: e.code, message: e.message, detail: e.detail }],
        });
      // Drain whatever the client was still sending so the connection can be reused.
      if (!req.readableEnded) req.resume();
    });
  };
}

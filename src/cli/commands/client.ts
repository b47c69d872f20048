// The CLI's API client: finds the daemon (PAAS_API) and the token (PAAS_TOKEN, else
// `<PAAS_DATA_DIR>/admin-token`), and turns API errors into PaasErrors so main.ts prints
// the message and exits with the code the errors table gives the status.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { exitCodeForStatus, PaasError, Unauthorized } from '../../errors/index.ts';
import { loadProfile, type Profile } from './profile.ts';

// `paas login`'s profile, read once per run (null: never logged in).
let profile: Profile | null | undefined;
function stored(): Profile | null {
  if (profile === undefined) profile = loadProfile();
  return profile;
}

export function apiBase(): string {
  // An empty PAAS_API counts as unset, as an empty PAAS_TOKEN does.
  return (process.env.PAAS_API || stored()?.api || 'http://127.0.0.1:7070').replace(/\/$/, '');
}

/**
 * The pinned certificate's TLS options when the API is the one `paas login` pinned: only that
 * certificate is trusted, and only with the fingerprint checked at login. Empty otherwise.
 */
export function tlsOptions(): ConnectionOptions {
  const p = stored();
  if (p === null || p.caPath === null || p.fingerprint === null || apiBase() !== p.api) return {};
  const want = p.fingerprint.replace(/^SHA256:/, '');
  return {
    ca: readFileSync(p.caPath),
    checkServerIdentity: (host: string, cert: PeerCertificate) =>
      checkServerIdentity(host, cert) ??
      (cert.fingerprint256 === want
        ? undefined
        : new Error(
            `the server's certificate is not the one pinned by paas login (${p.fingerprint})`,
          )),
  };
}

export function apiToken(): string {
  if (process.env.PAAS_TOKEN !== undefined && process.env.PAAS_TOKEN !== '')
    return process.env.PAAS_TOKEN;
  // The stored token goes only to the API it was stored for, never to another PAAS_API.
  const p = stored();
  if (p !== null && p.token !== '' && apiBase() === p.api) return p.token;
  const path = join(process.env.PAAS_DATA_DIR ?? '/var/lib/paas', 'admin-token');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    throw new Unauthorized(`no API token: set PAAS_TOKEN or make ${path} readable`);
  }
}

/** An API error as received: keeps the server's code and the exit code of its status. */
export class ApiError extends PaasError {
  readonly httpStatus: number;
  constructor(status: number, code: string, message: string, details: Record<string, unknown>) {
    super(code, 'internal', message, details);
    this.httpStatus = status;
  }
  override get exitCode(): number {
    return exitCodeForStatus(this.httpStatus);
  }
}

export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  return send(method, path, {
    // The API takes every change as JSON, even one with no body (src/daemon/api.ts).
    type: body === undefined && (method === 'GET' || method === 'HEAD') ? null : 'application/json',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A request with a raw body (services:restore's dump), errors handled as request's. */
export function requestBytes(method: string, path: string, body: Buffer): Promise<Response> {
  return send(method, path, { type: 'application/octet-stream', body });
}

async function send(
  method: string,
  path: string,
  opts: { type: string | null; body: string | Buffer | undefined },
): Promise<Response> {
  let res: Response;
  try {
    const tls = tlsOptions();
    // The pinned certificate needs a dispatcher of its own; undici's fetch with undici's Agent
    // (global fetch takes only its bundled undici's), loaded only then.
    const doFetch: typeof fetch =
      tls.ca === undefined
        ? fetch
        : await (async () => {
            const undici = await import('undici');
            const dispatcher = new undici.Agent({ connect: tls });
            return ((url: string, init: RequestInit) =>
              undici.fetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
          })();
    res = await doFetch(`${apiBase()}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiToken()}`,
        ...(opts.type === null ? {} : { 'content-type': opts.type }),
      },
      body: opts.body,
    });
  } catch (e) {
    if (e instanceof PaasError) throw e;
    throw new ApiError(
      503,
      'Unavailable',
      `cannot reach the paas daemon at ${apiBase()} (${(e as { cause?: { code?: string; message?: string } }).cause?.code ?? (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message})`,
      {},
    );
  }
  if (!res.ok) {
    let err: { code?: string; message?: string; details?: Record<string, unknown> } = {};
    try {
      err = ((await res.json()) as { error?: typeof err }).error ?? {};
    } catch {
      // Not JSON: fall back to the status line.
    }
    throw new ApiError(
      res.status,
      err.code ?? 'HttpError',
      err.message ?? `${res.status} ${res.statusText}`,
      err.details ?? {},
    );
  }
  return res;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await (await request(method, path, body)).json()) as T;
}

export function enc(s: string): string {
  return encodeURIComponent(s);
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Columns padded to their widest cell. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

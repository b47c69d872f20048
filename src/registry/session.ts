// One registry endpoint as the puller talks to it: its base URL, the credentials for its
// host, and the Authorization learned per scope from 401 challenges (client.ts answers
// them: Basic, or a Bearer token from the realm). Every wait is bounded: connect and
// response headers by `timeoutMs`; blob bodies by the dispatcher's idle timeout.
import type { Dispatcher } from 'undici';
import { ImageNotFound, PaasError, RegistryUnavailable, Unauthorized } from '../errors/index.ts';
import { answerChallenge } from './client.ts';
import type { RegistryCredential as Credential } from './types.ts';

/** A network failure as one short phrase (`connection refused`, `DNS lookup failed`, …). */
export function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (err as { code?: string })?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'DNS lookup failed';
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') return 'network unreachable';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connection timed out';
  if ((err as Error)?.name === 'TimeoutError' || (err as Error)?.name === 'AbortError')
    return 'timed out';
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/** One registry endpoint with its credentials; remembers the Authorization per scope. */
export class Session {
  readonly url: string;
  readonly label: string;
  private readonly cred: Credential | null;
  private readonly timeoutMs: number;
  private readonly auth = new Map<string, string>();

  constructor(url: string, label: string, cred: Credential | null, timeoutMs: number) {
    this.url = url.replace(/\/+$/, '');
    this.label = label;
    this.cred = cred;
    this.timeoutMs = timeoutMs;
  }

  /**
   * GET with auth. The timeout covers connecting and the response headers; the body is the
   * caller's to bound (`signal` stays usable for that).
   */
  async get(
    pathOrUrl: string,
    scope: string,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${this.url}${pathOrUrl}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const h: Record<string, string> = { ...headers };
      const a = this.auth.get(scope);
      if (a) h.authorization = a;
      const ac = new AbortController();
      const timer = setTimeout(
        () => ac.abort(new DOMException('timed out', 'TimeoutError')),
        this.timeoutMs,
      );
      const onAbort = () => ac.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      let res: Response;
      try {
        res = await fetch(url, { headers: h, signal: ac.signal, redirect: 'follow' });
      } catch (err) {
        throw new RegistryUnavailable(`${this.label}: ${networkReason(err)}`, {
          registry: this.label,
        });
      } finally {
        clearTimeout(timer);
      }
      const challenge = res.headers.get('www-authenticate');
      if (res.status !== 401 || !challenge || attempt > 0) return res;
      await res.body?.cancel();
      try {
        this.auth.set(
          scope,
          await answerChallenge(challenge, scope, this.cred, this.label, this.timeoutMs),
        );
      } catch (err) {
        if (err instanceof PaasError) throw err;
        throw new RegistryUnavailable(`${this.label}: token request: ${networkReason(err)}`, {
          registry: this.label,
        });
      }
    }
    throw new Unauthorized(`${this.label}: authentication failed`);
  }

  /**
   * A blob GET on undici's own request API: a Node stream body (several times faster than
   * fetch's web stream for large layers), with the connect/headers/idle bounds of
   * `dispatcher` and the same challenge handling as `get`.
   */
  async stream(
    dispatcher: Dispatcher,
    pathOrUrl: string,
    scope: string,
    headers: Record<string, string> = {},
  ): Promise<Dispatcher.ResponseData> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${this.url}${pathOrUrl}`;
    // Loaded here, by the first blob download, not with the daemon (pull.ts's dispatcher too).
    const { request } = await import('undici');
    for (let attempt = 0; ; attempt++) {
      const h: Record<string, string> = { ...headers };
      const a = this.auth.get(scope);
      if (a) h.authorization = a;
      const res = await request(url, { headers: h, dispatcher });
      const challenge = res.headers['www-authenticate'];
      if (res.statusCode !== 401 || typeof challenge !== 'string' || attempt > 0) return res;
      await res.body.dump().catch(() => undefined);
      this.auth.set(
        scope,
        await answerChallenge(challenge, scope, this.cred, this.label, this.timeoutMs),
      );
    }
  }

  /** Why a response is not the one wanted, as a typed error naming the registry. */
  async fail(res: Response, what: string): Promise<never> {
    await res.body?.cancel().catch(() => undefined);
    return this.failStatus(res.status, what);
  }

  failStatus(status: number, what: string): never {
    const res = { status };
    if (res.status === 404) throw new ImageNotFound(`${what} not found on ${this.label}`);
    if (res.status === 401 || res.status === 403)
      throw new Unauthorized(
        `${what}: ${this.label} refused access (${res.status})${this.cred ? ` for user ${this.cred.username}` : '; log in with `paas registry:login`'}`,
      );
    throw new RegistryUnavailable(`${what}: ${this.label} answered ${res.status}`, {
      registry: this.label,
      status: res.status,
    });
  }
}

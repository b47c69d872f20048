// ACME HTTP-01 answers (RFC 8555 §8.3): the daemon pushes `token → key authorization` pairs
// for the orders it runs, and every data plane answers
// `GET /.well-known/acme-challenge/<token>` on its HTTP port for any Host, before routing
// (and before any HTTPS redirect: the CA validates over plain HTTP on port 80 and follows
// redirects, but nothing is gained by sending it anywhere). The router owns this path on
// HTTP: an unknown token is a 404 from the router, never a request to an app.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidArgument } from '../errors/index.ts';

export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

// RFC 8555 §8.1/§8.3: a token is base64url (no padding) with at least 128 bits of entropy,
// the key authorization `token || '.' || base64url(JWK thumbprint)`. Anything else is not
// ours to store or answer; the length cap keeps a pushed table small.
const TOKEN = /^[A-Za-z0-9_-]{22,128}$/;
const KEY_AUTHZ = /^([A-Za-z0-9_-]{22,128})\.[A-Za-z0-9_-]{43}$/;

/** Token → key authorization, as pushed over the control socket. */
export type Challenges = Readonly<Record<string, string>>;

/** Whether `s` has the shape of an ACME token (the only path segment the router answers). */
export function isChallengeToken(s: unknown): s is string {
  return typeof s === 'string' && TOKEN.test(s);
}

/** The control socket's validator for one pushed challenge. */
export function parseChallenge(v: unknown): { token: string; keyAuthorization: string } {
  const o = (v ?? {}) as { token?: unknown; keyAuthorization?: unknown };
  if (!isChallengeToken(o.token))
    throw new InvalidArgument('acme challenge: token is not an ACME token (base64url)');
  const m = typeof o.keyAuthorization === 'string' ? KEY_AUTHZ.exec(o.keyAuthorization) : null;
  if (m === null || m[1] !== o.token)
    throw new InvalidArgument('acme challenge: key authorization does not belong to the token');
  return { token: o.token, keyAuthorization: o.keyAuthorization as string };
}

/** A whole pushed set (what workers receive): each entry validated again. */
export function parseChallenges(v: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (typeof v !== 'object' || v === null) return out;
  for (const [token, keyAuthorization] of Object.entries(v)) {
    const c = parseChallenge({ token, keyAuthorization });
    out.set(c.token, c.keyAuthorization);
  }
  return out;
}

/**
 * Answer `req` if it is an ACME HTTP-01 request; return false to let routing go on.
 * Only the exact `<prefix><token>` of a pushed token answers 200: no decoding, no dot
 * segments, no query, so `..%2f` or a longer path never reaches a file or another token.
 */
export function answerChallenge(
  challenges: ReadonlyMap<string, string>,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const url = req.url ?? '';
  if (!url.startsWith(CHALLENGE_PREFIX)) return false;
  const token = url.slice(CHALLENGE_PREFIX.length);
  const keyAuthz =
    (req.method === 'GET' || req.method === 'HEAD') && isChallengeToken(token)
      ? challenges.get(token)
      : undefined;
  const body = keyAuthz ?? 'no such ACME challenge\n';
  res.writeHead(keyAuthz === undefined ? 404 : 200, {
    // RFC 8555 §8.3: the body is the key authorization, ASCII, nothing around it.
    'content-type':
      keyAuthz === undefined ? 'text/plain; charset=utf-8' : 'application/octet-stream',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

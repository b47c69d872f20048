// The admin token: 32 random bytes, written once to `<data-dir>/admin-token` (0600) and
// compared in constant time. The API takes it only as `Authorization: Bearer <token>`; git
// and the registry also take it as the Basic password (any user name), which is what their
// clients send. Browsers cache Basic credentials and attach them to requests other sites
// make (a form POST), but never a Bearer header, so Basic must not open the API.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Forbidden, Unauthorized } from '../errors/index.ts';
import { writeFileWhole } from '../files/index.ts';
import { TokenStore, type Grant, type Scope } from './tokens.ts';

export { parseExpiry, parseLabel, parseScope, SCOPES, TokenStore } from './tokens.ts';
export type { Grant, Scope } from './tokens.ts';

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, 'admin-token');
}

export function ensureAdminToken(dataDir: string): { token: string; created: boolean } {
  const path = adminTokenPath(dataDir);
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    return { token: readFileSync(path, 'utf8').trim(), created: false };
  }
  const token = randomBytes(32).toString('hex');
  // `wx`: two daemons starting at once cannot both write a token.
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, created: true };
}

/** Constant-time equality: both sides hashed first so lengths never leak either. */
export function tokenChecker(token: string): (candidate: string | null) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (candidate) =>
    candidate !== null && timingSafeEqual(createHash('sha256').update(candidate).digest(), want);
}

/** The token of an `Authorization: Bearer` header: the API's only credential. */
export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  return h !== undefined && /^bearer /i.test(h) ? h.slice(7).trim() : null;
}

/** Bearer or the Basic password: for the registry, whose clients (docker, skopeo) send Basic. */
export function requestToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  if (/^bearer /i.test(h)) return h.slice(7).trim();
  if (/^basic /i.test(h)) {
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i < 0 ? null : decoded.slice(i + 1);
  }
  return null;
}

// ---- Scoped access (issue 19) ------------------------------------------------------------
// Every credential check of the API, git over HTTP and the registry ends in Auth.authorize:
// one place that knows the admin token, the scoped tokens of tokens.ts, what each scope may do
// and how a refusal is answered (Unauthorized 401: no valid token; Forbidden 403: a valid token
// that does not cover this) and logged (a platform event naming the token's id, never its
// secret). The API's routes declare their scope in routes.ts; git and the registry name the
// app and whether they write.

/** Where a request came from and went, for the refusal's log line (no header, no query). */
export interface Where {
  method: string;
  path: string;
  remote: string | null;
}

export interface Refusal extends Where {
  status: 401 | 403;
  reason: string;
  /** The token's id when it was a valid one; null otherwise. Never the secret. */
  token: string | null;
  need: Scope;
  app: string | null;
}

const RANK: Record<Scope, number> = { read: 0, deploy: 1, admin: 2 };

/** The admin token file's grant: every scope, every app. */
const ADMIN: Grant = { id: 'admin', scope: 'admin', apps: null, label: 'admin token file' };

export class Auth {
  readonly tokens: TokenStore;
  readonly #dataDir: string;
  readonly #onRefused: (r: Refusal) => void;
  #isAdmin: (t: string | null) => boolean;

  constructor(dataDir: string, onRefused: (r: Refusal) => void) {
    this.#dataDir = dataDir;
    this.#onRefused = onRefused;
    this.#isAdmin = tokenChecker(ensureAdminToken(dataDir).token);
    this.tokens = new TokenStore(dataDir);
  }

  /** The grant of a presented token, or why there is none. */
  identify(presented: string | null): { grant: Grant } | { refused: string; id?: string } {
    if (presented === null || presented === '') return { refused: 'no token' };
    if (this.#isAdmin(presented)) return { grant: ADMIN };
    const r = this.tokens.check(presented);
    if ('grant' in r) return r;
    return r.refused === 'expired'
      ? { refused: 'expired token', id: r.id }
      : { refused: 'unknown or revoked token' };
  }

  /** True for the admin token file's token (the dashboard's login). */
  isAdmin(presented: string | null): boolean {
    const r = this.identify(presented);
    return 'grant' in r && r.grant.scope === 'admin';
  }

  /**
   * The grant for a request that needs `need` on `app` (null: no one app, like listing apps or
   * pulling a base image), or a typed refusal, logged. A token limited to apps may do nothing
   * beyond reading outside them.
   */
  authorize(presented: string | null, need: Scope, app: string | null, where: Where): Grant {
    const who = this.identify(presented);
    const refuse = (status: 401 | 403, reason: string, token: string | null): never => {
      // No credentials at all is the challenge git and registry clients start every exchange
      // with (they retry with the token after the 401), not an attempt worth a warning.
      if (presented !== null && presented !== '')
        this.#onRefused({ ...where, status, reason, token, need, app });
      if (status === 401)
        throw new Unauthorized(`${reason}: a valid API token is required`, { reason });
      throw new Forbidden(reason, { need, app, token });
    };
    if (!('grant' in who)) return refuse(401, who.refused, who.id ?? null);
    const g = who.grant;
    if (RANK[g.scope] < RANK[need])
      return refuse(403, `token ${g.id} has scope ${g.scope}; this needs ${need}`, g.id);
    if (g.apps !== null) {
      if (app === null && need !== 'read')
        return refuse(403, `token ${g.id} is limited to apps ${g.apps.join(', ')}`, g.id);
      if (app !== null && !(g.apps as readonly string[]).includes(app))
        return refuse(403, `token ${g.id} does not cover app ${app}`, g.id);
    }
    return g;
  }

  /** A new admin token file; the old token stops working at once. Returns the new token. */
  rotateAdmin(): string {
    const token = randomBytes(32).toString('hex');
    const path = adminTokenPath(this.#dataDir);
    // Written aside and renamed over: a crash leaves the old file or the new, never half.
    writeFileWhole(path, `${token}\n`, { mode: 0o600 });
    this.#isAdmin = tokenChecker(token);
    return token;
  }

  close(): void {
    this.tokens.close();
  }
}

/** Which app a registry repository belongs to: `<app>` is an app's, anything else none. */
export function registryAccess(
  repo: string | null,
  push: boolean,
): { need: Scope; app: string | null } {
  // The catalog (repo '*') names every app's images: admin only.
  if (repo === '*') return { need: 'admin', app: null };
  // `/v2/` itself: any valid token (docker login's probe).
  if (repo === null) return { need: 'read', app: null };
  const isApp = !repo.includes('/');
  if (push) return isApp ? { need: 'deploy', app: repo } : { need: 'admin', app: null };
  // Base images (library/…) and mirrored images are no app's: any token may pull them.
  return { need: 'read', app: isApp ? repo : null };
}

/** The remote address of a request, for logs. */
export function remoteOf(req: IncomingMessage): string | null {
  return req.socket.remoteAddress ?? null;
}

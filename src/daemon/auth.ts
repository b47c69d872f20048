// The admin token: 32 random bytes, written once to `<data-dir>/admin-token` (0600) and
// compared in constant time. The API takes it only as `Authorization: Bearer <token>`; git
// and the registry also take it as the Basic password (any user name), which is what their
// clients send. Browsers cache Basic credentials and attach them to requests other sites
// make (a form POST), but never a Bearer header, so Basic must not open the API.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';

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

// Browser sessions for the dashboard: the admin token is exchanged once, at login, for a
// random session id in an HttpOnly, SameSite=Strict cookie (so scripts cannot read it and
// other sites cannot send it). Each session carries its own CSRF token, which every form
// POST must echo (OWASP's synchronizer token pattern) — SameSite alone does not cover
// same-site attackers such as another app on a sibling subdomain of the same domain.
// Sessions live in memory: a daemon restart logs everyone out, and no secret sits on disk.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
// The names live with the router, which strips these cookies from every request to an app.
// LOGIN_COOKIE is the login form's own double-submit token, so a cross-site page cannot log
// a browser in.
export { LOGIN_COOKIE, SESSION_COOKIE } from '../router/index.ts';
const TTL_MS = 12 * 60 * 60 * 1000;
const MAX_SESSIONS = 1000;

export interface Session {
  id: string;
  csrf: string;
  expires: number;
}

export class Sessions {
  private readonly byId = new Map<string, Session>();
  private readonly ttlMs: number;

  constructor(ttlMs = TTL_MS) {
    this.ttlMs = ttlMs;
  }

  create(): Session {
    this.sweep();
    // Oldest first (Map keeps insertion order): a flood of logins evicts old sessions, not memory.
    while (this.byId.size >= MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!);
    const s: Session = { id: randomToken(), csrf: randomToken(), expires: Date.now() + this.ttlMs };
    this.byId.set(s.id, s);
    return s;
  }

  get(id: string | null): Session | null {
    if (id === null) return null;
    const s = this.byId.get(id);
    if (s === undefined) return null;
    if (s.expires < Date.now()) {
      this.byId.delete(id);
      return null;
    }
    return s;
  }

  destroy(id: string): void {
    this.byId.delete(id);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.byId) if (s.expires < now) this.byId.delete(id);
  }
}

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time string equality (both sides hashed, so lengths do not leak either). */
export function sameToken(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string' || a === '') return false;
  return timingSafeEqual(
    createHash('sha256').update(a).digest(),
    createHash('sha256').update(b).digest(),
  );
}

/** One cookie's value from the Cookie header (RFC 6265 §5.4: `name=value` pairs joined by `; `). */
export function readCookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

export function sessionCookie(
  name: string,
  value: string,
  opts: { maxAgeS: number; path?: string },
): string {
  return `${name}=${value}; Path=${opts.path ?? '/'}; Max-Age=${opts.maxAgeS}; HttpOnly; SameSite=Strict`;
}

export const SESSION_MAX_AGE_S = TTL_MS / 1000;

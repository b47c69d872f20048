import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseSync } from 'node:sqlite';
import {
  Auth,
  bearerToken,
  ensureAdminToken,
  parseExpiry,
  parseLabel,
  parseScope,
  registryAccess,
  requestToken,
  tokenChecker,
  type Refusal,
} from './auth.ts';
import { parseAppName } from '../apps/index.ts';
import { PaasError } from '../errors/index.ts';
import { ROUTES } from './routes.ts';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('admin token', () => {
  it('is written once with mode 0600 and kept across starts', () => {
    dir = mkdtempSync(join(tmpdir(), 'paas-auth-'));
    const a = ensureAdminToken(dir);
    expect(a.created).toBe(true);
    expect(a.token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
    const b = ensureAdminToken(dir);
    expect(b).toEqual({ token: a.token, created: false });
  });

  it('accepts only the exact token, as Bearer or as the Basic password', () => {
    const check = tokenChecker('s3cret');
    const req = (authorization?: string) => ({ headers: { authorization } }) as IncomingMessage;
    expect(check(requestToken(req('Bearer s3cret')))).toBe(true);
    expect(
      check(requestToken(req(`Basic ${Buffer.from('anyone:s3cret').toString('base64')}`))),
    ).toBe(true);
    for (const bad of [
      'Bearer s3cre',
      'Bearer s3cret2',
      'Bearer ',
      `Basic ${Buffer.from('s3cret').toString('base64')}`,
      undefined,
    ]) {
      expect(check(requestToken(req(bad)))).toBe(false);
    }
  });

  it('the API reads only a Bearer token: a (browser-cached) Basic password is none', () => {
    const check = tokenChecker('s3cret');
    const req = (authorization?: string) => ({ headers: { authorization } }) as IncomingMessage;
    expect(check(bearerToken(req('Bearer s3cret')))).toBe(true);
    expect(bearerToken(req(`Basic ${Buffer.from('anyone:s3cret').toString('base64')}`))).toBe(null);
    expect(bearerToken(req(undefined))).toBe(null);
  });
});

describe('scoped tokens (issue 19)', () => {
  const where = { method: 'GET', path: '/x', remote: '127.0.0.1' };
  const a = parseAppName('alpha');
  const b = parseAppName('beta');
  /** The status a refusal carries, or 200 when allowed. */
  const status = (f: () => unknown): number => {
    try {
      f();
      return 200;
    } catch (e) {
      if (e instanceof PaasError) return e.status;
      throw e;
    }
  };
  let auth: Auth;
  let refusals: Refusal[] = [];
  const open = () => {
    dir = mkdtempSync(join(tmpdir(), 'paas-auth-'));
    refusals = [];
    auth = new Auth(dir, (r) => refusals.push(r));
    return ensureAdminToken(dir).token;
  };
  afterEach(() => auth?.close());

  it('stores only a hash: the secret is nowhere in tokens.db, which is 0600', () => {
    open();
    const { token, info } = auth.tokens.create({
      scope: 'deploy',
      apps: [a],
      expiresInSeconds: null,
      label: 'ci',
    });
    expect(token).toMatch(/^paas_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const secret = token.slice('paas_'.length + 17);
    expect(statSync(join(dir, 'tokens.db')).mode & 0o777).toBe(0o600);
    auth.close();
    for (const f of readdirSync(dir).filter((f) => f.startsWith('tokens.db')))
      expect(readFileSync(join(dir, f)).includes(secret)).toBe(false);
    auth = new Auth(dir, () => undefined);
    expect(auth.authorize(token, 'deploy', a, where).id).toBe(info.id);
  });

  it('deploy covers its apps only; read cannot write; only admin reaches admin routes', () => {
    const admin = open();
    const deploy = auth.tokens.create({
      scope: 'deploy',
      apps: [a],
      expiresInSeconds: null,
      label: null,
    }).token;
    const read = auth.tokens.create({
      scope: 'read',
      apps: [a],
      expiresInSeconds: null,
      label: null,
    }).token;
    const anyRead = auth.tokens.create({
      scope: 'read',
      apps: null,
      expiresInSeconds: null,
      label: null,
    }).token;
    expect(status(() => auth.authorize(deploy, 'deploy', a, where))).toBe(200);
    expect(status(() => auth.authorize(deploy, 'read', a, where))).toBe(200);
    expect(status(() => auth.authorize(deploy, 'deploy', b, where))).toBe(403);
    expect(status(() => auth.authorize(deploy, 'read', b, where))).toBe(403);
    expect(status(() => auth.authorize(deploy, 'admin', a, where))).toBe(403);
    expect(status(() => auth.authorize(deploy, 'deploy', null, where))).toBe(403);
    expect(status(() => auth.authorize(read, 'read', a, where))).toBe(200);
    expect(status(() => auth.authorize(read, 'deploy', a, where))).toBe(403);
    expect(status(() => auth.authorize(anyRead, 'read', b, where))).toBe(200);
    expect(status(() => auth.authorize(anyRead, 'deploy', b, where))).toBe(403);
    expect(status(() => auth.authorize(admin, 'admin', null, where))).toBe(200);
    for (const bad of [
      null,
      '',
      'nope',
      `${deploy}x`,
      deploy.slice(0, -1) + (deploy.endsWith('A') ? 'B' : 'A'),
    ])
      expect(status(() => auth.authorize(bad, 'read', a, where))).toBe(401);
    // Every refusal of a presented token was reported, none with a secret in it; no token at
    // all (the challenge every git push starts with) is a 401 but not reported.
    expect(refusals.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 403, 401, 401, 401]);
    const logged = JSON.stringify(refusals);
    for (const t of [deploy, read, anyRead, admin])
      expect(logged).not.toContain(t.startsWith('paas_') ? t.slice(22) : t);
  });

  it('refuses an admin token limited to apps, and bad scope/expiry/label input', () => {
    open();
    expect(() =>
      auth.tokens.create({ scope: 'admin', apps: [a], expiresInSeconds: null, label: null }),
    ).toThrow(/every app/);
    for (const bad of ['owner', '', 'ADMIN', undefined])
      expect(() => parseScope(bad)).toThrow(/scope/);
    expect([parseExpiry('90m'), parseExpiry('12h'), parseExpiry('30d'), parseExpiry('2w')]).toEqual(
      [5400, 43200, 2592000, 1209600],
    );
    for (const bad of ['0d', '30', '1y', '-1d', '99999w', 30])
      expect(() => parseExpiry(bad)).toThrow(/duration/);
    expect(parseLabel(undefined)).toBe(null);
    for (const bad of ['a\nb', 'x'.repeat(101), 7]) expect(() => parseLabel(bad)).toThrow(/label/);
  });

  it('revocation and expiry hold from the next check; rotate-admin retires the old admin token', () => {
    const admin = open();
    const t = auth.tokens.create({
      scope: 'read',
      apps: null,
      expiresInSeconds: 3600,
      label: null,
    });
    expect(status(() => auth.authorize(t.token, 'read', a, where))).toBe(200);
    const db = new DatabaseSync(join(dir, 'tokens.db'));
    db.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run(
      new Date(Date.now() - 1000).toISOString(),
      t.info.id,
    );
    db.close();
    expect(status(() => auth.authorize(t.token, 'read', a, where))).toBe(401);
    expect(refusals.at(-1)?.reason).toBe('expired token');
    const u = auth.tokens.create({
      scope: 'read',
      apps: null,
      expiresInSeconds: null,
      label: null,
    });
    auth.tokens.revoke(u.info.id);
    expect(status(() => auth.authorize(u.token, 'read', a, where))).toBe(401);
    const fresh = auth.rotateAdmin();
    expect(status(() => auth.authorize(admin, 'admin', null, where))).toBe(401);
    expect(status(() => auth.authorize(fresh, 'admin', null, where))).toBe(200);
    expect(readFileSync(join(dir, 'admin-token'), 'utf8').trim()).toBe(fresh);
    expect(statSync(join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
  });

  it('maps registry repositories to apps: push is deploy on the app, base images admin', () => {
    expect(registryAccess('alpha', true)).toEqual({ need: 'deploy', app: 'alpha' });
    expect(registryAccess('alpha', false)).toEqual({ need: 'read', app: 'alpha' });
    expect(registryAccess('library/node', false)).toEqual({ need: 'read', app: null });
    expect(registryAccess('library/node', true)).toEqual({ need: 'admin', app: null });
    expect(registryAccess('*', false)).toEqual({ need: 'admin', app: null });
    expect(registryAccess(null, false)).toEqual({ need: 'read', app: null });
  });
});

describe('the route table', () => {
  it('declares every API route the daemon mounts, and nothing it does not', () => {
    // Read from the sources: a route added without a row here would silently need admin,
    // which is safe but surprising; this makes the choice explicit.
    const here = join(import.meta.dirname);
    const mounted = new Set<string>();
    for (const f of readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')))
      for (const m of readFileSync(join(here, f), 'utf8').matchAll(
        /api\.(get|post|put|patch|delete)\(\s*'(\/api[^']*)'/g,
      ))
        mounted.add(`${m[1]!.toUpperCase()} ${m[2]}`);
    const declared = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
    expect([...mounted].filter((r) => !declared.has(r))).toEqual([]);
    expect([...declared].filter((r) => !mounted.has(r))).toEqual([]);
  });
});

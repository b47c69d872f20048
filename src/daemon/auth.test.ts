import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { bearerToken, ensureAdminToken, requestToken, tokenChecker } from './auth.ts';

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

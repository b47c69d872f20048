import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { readCookie, sameToken, sessionCookie, Sessions } from './session.ts';

const req = (cookie?: string) =>
  ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage;

describe('dashboard sessions', () => {
  it('a session is found by its id until it is destroyed; ids and CSRF tokens are unguessable and distinct', () => {
    const s = new Sessions();
    const a = s.create();
    const b = s.create();
    expect(a.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set([a.id, a.csrf, b.id, b.csrf]).size).toBe(4);
    expect(s.get(a.id)).toBe(a);
    s.destroy(a.id);
    expect(s.get(a.id)).toBeNull();
    expect(s.get(b.id)).toBe(b);
    expect(s.get(null)).toBeNull();
    expect(s.get(b.csrf)).toBeNull();
  });

  it('an expired session is gone', async () => {
    const s = new Sessions(20);
    const a = s.create();
    await new Promise((r) => setTimeout(r, 40));
    expect(s.get(a.id)).toBeNull();
  });

  it('sameToken compares whole tokens and refuses empty or missing ones', () => {
    expect(sameToken('abc', 'abc')).toBe(true);
    expect(sameToken('abd', 'abc')).toBe(false);
    expect(sameToken('ab', 'abc')).toBe(false);
    expect(sameToken('abcd', 'abc')).toBe(false);
    expect(sameToken('', '')).toBe(false);
    expect(sameToken(null, 'abc')).toBe(false);
    expect(sameToken(undefined, 'abc')).toBe(false);
  });

  it('reads one cookie by exact name from the Cookie header', () => {
    expect(readCookie(req('a=1; paas_session=xyz; b=2'), 'paas_session')).toBe('xyz');
    expect(readCookie(req('xpaas_session=no; paas_session_old=no'), 'paas_session')).toBeNull();
    expect(readCookie(req(), 'paas_session')).toBeNull();
  });

  it('session cookies are HttpOnly and SameSite=Strict', () => {
    expect(sessionCookie('paas_session', 'v', { maxAgeS: 60 })).toBe(
      'paas_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict',
    );
  });
});

import { describe, expect, it } from 'vitest';
import { parseAppName } from './name.ts';
import { PaasError } from '../errors/index.ts';

describe('parseAppName', () => {
  it.each(['a', 'my-app', 'app2', 'x'.repeat(63), 'a1-b2'])('accepts %s', (n) => {
    expect(parseAppName(n)).toBe(n);
  });

  it.each([
    ['', 'required'],
    ['1app', 'invalid'],
    ['App', 'invalid'],
    ['my_app', 'invalid'],
    ['app-', 'invalid'],
    ['-app', 'invalid'],
    ['a.b', 'invalid'],
    ['../etc', 'invalid'],
    ['x'.repeat(64), 'longer than 63'],
    ['paas', 'reserved'],
    ['v2', 'reserved'],
  ])('refuses %j (%s)', (n, why) => {
    try {
      parseAppName(n);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PaasError);
      expect((e as PaasError).code).toBe('InvalidAppName');
      expect((e as PaasError).status).toBe(400);
      expect((e as PaasError).exitCode).toBe(2);
      expect((e as PaasError).message).toContain(why);
    }
  });

  it('refuses non-strings', () => {
    expect(() => parseAppName(undefined)).toThrow(/required/);
    expect(() => parseAppName(42)).toThrow(/required/);
  });
});

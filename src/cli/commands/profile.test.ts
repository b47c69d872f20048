import { describe, expect, it } from 'vitest';
import { parseFingerprint } from './profile.ts';

describe('--fingerprint', () => {
  const hex = 'ab'.repeat(31) + 'cd';
  const canonical = `SHA256:${'AB:'.repeat(31)}CD`;
  it('takes openssl, browser, bare-hex and base64 spellings of one SHA-256', () => {
    for (const v of [
      canonical,
      canonical.toLowerCase(),
      `sha256 Fingerprint=${'AB:'.repeat(31)}CD`,
      hex,
      `SHA256:${hex}`,
      `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=$/, '')}`,
    ])
      expect(parseFingerprint(v)).toBe(canonical);
  });
  it('refuses anything else', () => {
    for (const v of [
      '',
      'SHA256:',
      hex.slice(2),
      `${hex}00`,
      'MD5:ab:cd',
      `SHA1:${'ab'.repeat(20)}`,
    ])
      expect(() => parseFingerprint(v)).toThrow(/fingerprint/);
  });
});

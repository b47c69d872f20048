// The ACME inputs' validators: the daemon's flags and certs:auto's --email.
import { describe, expect, it } from 'vitest';
import { parseAcmeDirectory, parseAcmeDuration, parseAcmeEmail } from './index.ts';

describe('ACME inputs', () => {
  it('takes an https directory URL only (RFC 8555 §6.1)', () => {
    expect(parseAcmeDirectory('https://acme-v02.api.letsencrypt.org/directory')).toBe(
      'https://acme-v02.api.letsencrypt.org/directory',
    );
    expect(() => parseAcmeDirectory('http://ca.example/dir')).toThrow(/must be an https URL/);
    expect(() => parseAcmeDirectory('not a url')).toThrow(/is not a URL/);
  });

  it('takes an email address, refusing header injection and junk', () => {
    expect(parseAcmeEmail('ops@example.com')).toBe('ops@example.com');
    for (const bad of ['ops', 'ops@localhost', 'a@b.c\nBcc: x@y.z', 'a b@example.com', '', 42])
      expect(() => parseAcmeEmail(bad), JSON.stringify(bad)).toThrow(/not an email address/);
  });

  it('takes durations in s, m, h or d', () => {
    expect(parseAcmeDuration('acme-renew-before', '30d')).toBe(30 * 86_400_000);
    expect(parseAcmeDuration('acme-check-every', '90s')).toBe(90_000);
    for (const bad of ['0d', '30', '1w', '-1h', '1.5h', ''])
      expect(() => parseAcmeDuration('acme-renew-before', bad), bad).toThrow(
        /--acme-renew-before .* is not a duration/,
      );
  });
});

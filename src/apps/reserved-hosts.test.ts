import { describe, expect, it } from 'vitest';
import { PaasError } from '../errors/index.ts';
import { parseAppName } from './name.ts';
import { platformHosts, refuseReservedDomain } from './reserved-hosts.ts';
import { parseDomain, type Domain } from './validate.ts';

const reserved = platformHosts('paas.example', ['box1.lan']);
const refused = (raw: string): PaasError | null => {
  try {
    refuseReservedDomain(parseDomain(raw), reserved);
    return null;
  } catch (e) {
    return e as PaasError;
  }
};

describe('the platform host names no app may claim', () => {
  it.each([
    'paas.example',
    'PAAS.example.',
    'dashboard.paas.example',
    'api.paas.example',
    'paas.paas.example',
    'box1.lan',
    '127.0.0.1',
    '10.0.0.5',
  ])('refuses %s with a clear error', (d) => {
    const e = refused(d);
    expect(e).toBeInstanceOf(PaasError);
    expect(e!.code).toBe('ReservedDomain');
    expect(e!.status).toBe(409);
    expect(e!.message).toMatch(/platform itself|IP address/);
  });

  it('refuses a wildcard that covers one of them', () => {
    // Wildcard domains come through the same path (router/table.ts routes them).
    expect(() => refuseReservedDomain('*.paas.example' as Domain, reserved)).toThrow(
      /covers "paas.paas.example"|covers "api.paas.example"/,
    );
    expect(() => refuseReservedDomain('*.example' as Domain, reserved)).toThrow(
      /covers "paas.example"/,
    );
  });

  it.each(['www.example.com', 'shop.paas.example', 'paas.example.com', 'api.other.example'])(
    'lets an app claim %s',
    (d) => {
      expect(refused(d)).toBeNull();
    },
  );

  it('no app name yields a platform host as <app>.<domain>', () => {
    for (const h of reserved.filter((x) => x.endsWith('.paas.example')))
      expect(() => parseAppName(h.slice(0, -'.paas.example'.length))).toThrow(/reserved/);
  });
});

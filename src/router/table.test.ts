import { describe, expect, it } from 'vitest';
import { parseDomain } from '../apps/index.ts';
import { PaasError } from '../errors/index.ts';
import { HostIndex, hostOf, parseRouteTable } from './table.ts';

describe('parseRouteTable', () => {
  it('normalises domains and keeps what it is given', () => {
    const t = parseRouteTable({
      domain: 'Paas.Test.',
      apps: {
        web: {
          domains: ['WWW.Example.com', '*.example.org'],
          backends: [{ host: '10.0.0.2', port: 5000, id: 'web.1' }],
          maxBodyBytes: 10,
        },
      },
    });
    expect(t).toEqual({
      domain: 'paas.test',
      apps: {
        web: {
          domains: ['www.example.com', '*.example.org'],
          backends: [{ host: '10.0.0.2', port: 5000, id: 'web.1' }],
          maxBodyBytes: 10,
        },
      },
    });
  });

  it.each([
    [
      { domain: 'paas.test', apps: { Bad_Name: { domains: [], backends: [] } } },
      /invalid app name/,
    ],
    [
      { domain: 'paas.test', apps: { web: { domains: ['*.com.'], backends: [] } } },
      /invalid domain/,
    ],
    [
      { domain: 'paas.test', apps: { web: { domains: ['a b.com'], backends: [] } } },
      /invalid domain/,
    ],
    [
      {
        domain: 'paas.test',
        apps: { web: { domains: [], backends: [{ host: '1.2.3.4', port: 0 }] } },
      },
      /port/,
    ],
    [
      {
        domain: 'paas.test',
        apps: { web: { domains: [], backends: [{ host: 'x/y', port: 80 }] } },
      },
      /host/,
    ],
    [
      { domain: 'paas.test', apps: { web: { domains: [], backends: [], state: 'paused' } } },
      /state/,
    ],
    [{ apps: {} }, /domain/],
  ])('rejects %j', (raw, msg) => {
    expect(() => parseRouteTable(raw)).toThrow(msg);
    try {
      parseRouteTable(raw);
    } catch (e) {
      expect((e as PaasError).code).toBe('InvalidRouteTable');
    }
  });
});

describe('hostOf', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['example.com:8080', 'example.com'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]:8080', '[::1]'],
  ])('%s → %s', (h, want) => expect(hostOf(h)).toBe(want));

  it.each([
    '',
    'bad_host',
    'a..b',
    'example.com:port',
    'example.com:1:2',
    '[::1',
    'x'.repeat(64) + '.com',
    'ex ample.com',
  ])('rejects %j', (h) => {
    expect(hostOf(h)).toBeNull();
  });
});

describe('HostIndex', () => {
  const t = parseRouteTable({
    domain: 'paas.test',
    apps: {
      web: { domains: ['*.example.com'], backends: [] },
      shop: { domains: ['shop.example.com', '*.eu.example.com', 'web.paas.test'], backends: [] },
    },
  });
  const idx = new HostIndex(t, (app) => app);
  it.each([
    ['web.paas.test', 'web'], // the platform name cannot be taken by a custom domain
    ['shop.paas.test', 'shop'],
    ['shop.example.com', 'shop'], // exact beats wildcard
    ['blog.example.com', 'web'],
    ['a.eu.example.com', 'shop'], // the longest wildcard wins
    ['example.com', undefined],
    ['other.test', undefined],
  ])('%s → %s', (host, app) => expect(idx.lookup(host)).toBe(app));
});

describe('one domain rule for the API and the router (issue 17)', () => {
  const accepts = (f: () => unknown) => {
    try {
      f();
      return true;
    } catch {
      return false;
    }
  };
  it.each([
    'www.example.com',
    '*.example.com',
    '*.a.example.com',
    'WWW.Example.com.',
    '*.com',
    'localhost',
    'a b.com',
    '-x.example.com',
    'a.*.example.com',
    `${'a'.repeat(64)}.example.com`,
  ])('%s: the route table takes it exactly when domains:add does', (d) => {
    const api = accepts(() => parseDomain(d));
    const router = accepts(() =>
      parseRouteTable({ domain: 'paas.test', apps: { web: { domains: [d], backends: [] } } }),
    );
    expect(router).toBe(api);
  });
});

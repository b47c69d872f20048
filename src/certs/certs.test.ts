// An operator's certificate is checked before it can serve: key, validity, chain, names.
// Every certificate here is made by openssl (test/helpers/certs.ts).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCa } from '../../test/helpers/certs.ts';
import type { RouterCerts } from '../router/index.ts';
import { CertStore, validateCertificate } from './index.ts';

let dir: string;
let root: TestCa;
let inter: TestCa;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'paas-certs-'));
  root = TestCa.root(join(dir, 'root'));
  inter = root.intermediate('paas test intermediate');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pem = (l: { chain: string; key: string }) => ({ cert: l.chain, key: l.key });

describe('validateCertificate', () => {
  it('accepts a leaf with its intermediate and reads its names, issuer and expiry', () => {
    const l = inter.leaf(['shop.example.com', '*.shop.example.com']);
    const v = validateCertificate(pem(l));
    expect(v.names).toEqual(['shop.example.com', '*.shop.example.com']);
    expect(v.issuer).toBe('CN=paas test intermediate');
    expect(v.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(v.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // Re-encoded: the leaf then the intermediate, nothing else.
    expect(v.cert.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('refuses a key that is not the certificate’s', () => {
    const a = inter.leaf(['a.example.com']);
    const b = inter.leaf(['b.example.com']);
    expect(() => validateCertificate({ cert: a.chain, key: b.key })).toThrowError(
      expect.objectContaining({
        code: 'CertificateKeyMismatch',
        message: expect.stringContaining('does not match the certificate for a.example.com'),
      }),
    );
  });

  it('refuses an expired certificate and one not yet valid, naming the date', () => {
    const old = inter.leaf(['old.example.com'], {
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2020-02-01T00:00:00Z'),
    });
    expect(() => validateCertificate(pem(old))).toThrowError(
      expect.objectContaining({
        code: 'CertificateExpired',
        message: 'the certificate expired on 2020-02-01T00:00:00.000Z',
      }),
    );
    const soon = inter.leaf(['soon.example.com'], {
      notBefore: new Date(Date.now() + 5 * 86400e3),
      notAfter: new Date(Date.now() + 9 * 86400e3),
    });
    expect(() => validateCertificate(pem(soon))).toThrowError(
      expect.objectContaining({ code: 'CertificateNotYetValid' }),
    );
  });

  it('refuses a broken chain: an intermediate that did not sign the leaf', () => {
    const other = root.intermediate('another intermediate');
    const l = inter.leaf(['chain.example.com']);
    expect(() => validateCertificate({ cert: l.leaf + other.pem, key: l.key })).toThrowError(
      expect.objectContaining({
        code: 'CertificateChainBroken',
        message: expect.stringMatching(
          /^broken chain: certificate 1 \(CN=chain.example.com, issued by CN=paas test intermediate\) is not signed by certificate 2 of the bundle \(CN=another intermediate\)/,
        ),
      }),
    );
    // The same names in the wrong order are refused too; the right order passes.
    expect(() => validateCertificate({ cert: inter.pem + l.leaf, key: l.key })).toThrow();
    expect(() =>
      validateCertificate({ cert: l.leaf + inter.pem + root.pem, key: l.key }),
    ).not.toThrow();
  });

  it('refuses files that are not PEM', () => {
    const l = inter.leaf(['x.example.com']);
    expect(() => validateCertificate({ cert: 'hello', key: l.key })).toThrowError(
      expect.objectContaining({ code: 'InvalidCertificate' }),
    );
    expect(() => validateCertificate({ cert: l.chain, key: l.chain })).toThrowError(
      expect.objectContaining({
        code: 'InvalidCertificate',
        message: expect.stringContaining('no PEM private key'),
      }),
    );
  });
});

describe('CertStore', () => {
  it('installs for the hosts a certificate covers, keys 0600 in 0700 dirs, and survives a reopen', async () => {
    const data = join(dir, 'store1');
    const pushed: RouterCerts[] = [];
    const store = new CertStore({
      dataDir: data,
      domain: 'paas.test',
      publish: async (c) => void pushed.push(c),
    });
    const l = inter.leaf(['www.example.com', 'example.com']);
    const r = await store.addForApp(
      'shop',
      ['www.example.com', 'api.example.com', 'shop.paas.test'],
      pem(l),
    );
    expect(r.hosts).toEqual(['www.example.com']);
    expect(store.current('www.example.com')).toEqual({
      notAfter: expect.any(Date),
      source: 'manual',
    });
    expect(store.current('api.example.com')).toBeNull();
    expect(statSync(join(data, 'certs')).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, 'certs', 'shop')).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, 'certs', 'shop', 'www.example.com.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(data, 'certs', 'certs.json')).mode & 0o777).toBe(0o600);
    expect(Object.keys(pushed.at(-1)!.hosts)).toEqual(['www.example.com']);
    expect(pushed.at(-1)!.hosts['www.example.com']!.key).toContain('PRIVATE KEY');

    const again = new CertStore({ dataDir: data, domain: 'paas.test' });
    expect(again.list('shop').map((e) => [e.host, e.cert?.issuer])).toEqual([
      ['www.example.com', 'CN=paas test intermediate'],
    ]);
    expect(again.routerCerts()).toEqual(pushed.at(-1));
  });

  it('refuses a certificate that covers none of the app’s hosts, and a host another app holds', async () => {
    const store = new CertStore({ dataDir: join(dir, 'store2'), domain: 'paas.test' });
    const l = inter.leaf(['elsewhere.example.org']);
    await expect(store.addForApp('shop', ['www.example.com'], pem(l))).rejects.toMatchObject({
      code: 'CertificateHostMismatch',
      message: 'the certificate does not cover www.example.com: it names elsewhere.example.org',
    });
    const w = inter.leaf(['*.example.net']);
    await store.install('blog', '*.example.net', pem(w), 'manual');
    await expect(store.install('shop', '*.example.net', pem(w), 'manual')).rejects.toMatchObject({
      code: 'Conflict',
    });
    // A wildcard certificate covers one label, not the bare name nor two labels down.
    await expect(store.install('blog', 'example.net', pem(w), 'manual')).rejects.toMatchObject({
      code: 'CertificateHostMismatch',
    });
    await expect(store.install('blog', 'a.b.example.net', pem(w), 'manual')).rejects.toMatchObject({
      code: 'CertificateHostMismatch',
    });
    await store.install('blog', 'a.example.net', pem(w), 'manual');
  });

  it('keeps serving the old certificate when an order fails, with the error recorded', async () => {
    const store = new CertStore({ dataDir: join(dir, 'store3'), domain: 'paas.test' });
    const first = inter.leaf(['renew.example.com']);
    await store.install('app', 'renew.example.com', pem(first), 'auto');
    store.setAuto('app', 'renew.example.com', 'issued');
    store.recordError('app', 'renew.example.com', 'order failed: urn:ietf:params:acme:error:dns');
    const bad = inter.leaf(['renew.example.com'], {
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2020-02-01T00:00:00Z'),
    });
    await expect(store.install('app', 'renew.example.com', pem(bad), 'auto')).rejects.toMatchObject(
      {
        code: 'CertificateExpired',
      },
    );
    const [e] = store.list('app');
    expect(e).toMatchObject({
      host: 'renew.example.com',
      auto: 'issued',
      lastError: 'order failed: urn:ietf:params:acme:error:dns',
      cert: { source: 'auto', fingerprint: validateCertificate(pem(first)).fingerprint },
    });
    expect(store.routerCerts().hosts['renew.example.com']!.cert).toBe(
      validateCertificate(pem(first)).cert,
    );
    // A successful install clears the error.
    await store.install('app', 'renew.example.com', pem(inter.leaf(['renew.example.com'])), 'auto');
    expect(store.list('app')[0]!.lastError).toBeNull();
  });

  it('takes a default that covers *.<domain>, and forgets an app’s certificates', async () => {
    const data = join(dir, 'store4');
    const store = new CertStore({ dataDir: data, domain: 'paas.test' });
    await expect(store.setDefault(pem(inter.leaf(['*.other.test'])))).rejects.toMatchObject({
      code: 'CertificateHostMismatch',
    });
    await store.setDefault(pem(inter.leaf(['*.paas.test'])));
    expect(store.routerCerts().default?.names).toEqual(['*.paas.test']);
    expect(statSync(join(data, 'certs', '_default', 'default.key')).mode & 0o777).toBe(0o600);
    await store.install(
      'gone',
      'gone.example.com',
      pem(inter.leaf(['gone.example.com'])),
      'manual',
    );
    await store.forget('gone');
    expect(store.list('gone')).toEqual([]);
    expect(store.routerCerts().hosts).toEqual({});
    await expect(store.remove('gone', 'gone.example.com')).rejects.toMatchObject({
      code: 'CertificateNotFound',
    });
    expect(JSON.parse(readFileSync(join(data, 'certs', 'certs.json'), 'utf8')).hosts).toEqual({});
  });
});

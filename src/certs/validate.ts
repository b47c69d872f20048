// The one validator of a certificate someone hands us (an operator's files, an ACME order's
// result): it parses, its key matches, it is within its validity window, its bundle is a
// chain, and it names the host it is to serve. Each refusal says which of these failed.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import {
  CertificateChainBroken,
  CertificateExpired,
  CertificateHostMismatch,
  CertificateKeyMismatch,
  CertificateNotYetValid,
  InvalidCertificate,
} from '../errors/index.ts';

export interface CertPem {
  /** The leaf first, then the intermediates that sign it, in order (a "fullchain" file). */
  cert: string;
  key: string;
}

/** A certificate that passed every check but the host's (`covers` answers that one). */
export interface ValidCert {
  /** The bundle re-encoded from what parsed: no stray text, no private key by mistake. */
  cert: string;
  key: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the leaf, `AB:CD:…` as openssl prints it. */
  fingerprint: string;
  issuer: string;
  subject: string;
  /** The leaf's DNS names (subjectAltName; the CN when it has none). */
  names: string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseBundle(text: string): X509Certificate[] {
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new InvalidCertificate(
      'the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    );
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new InvalidCertificate(
        `certificate ${i + 1} of the bundle does not parse: ${(e as Error).message}`,
        { position: i + 1 },
      );
    }
  });
}

function parseKey(text: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    throw new InvalidCertificate(
      'the key file holds no PEM private key (-----BEGIN PRIVATE KEY-----)',
    );
  if (/ENCRYPTED/.test(text))
    throw new InvalidCertificate(
      'the private key is encrypted; give it without a passphrase (openssl pkey -in KEY -out PLAIN)',
    );
  try {
    return createPrivateKey(text);
  } catch (e) {
    throw new InvalidCertificate(`the private key does not parse: ${(e as Error).message}`);
  }
}

function namesOf(leaf: X509Certificate): string[] {
  const san = leaf.subjectAltName;
  if (san !== undefined) {
    const dns = san
      .split(/,\s*/)
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(leaf.subject);
  return cn ? [cn[1]!.toLowerCase()] : [];
}

const oneLine = (dn: string): string => dn.split('\n').join(', ');

/**
 * Everything but the host: the bundle parses, the key is the leaf's, every certificate is
 * valid at `now`, and each one is issued and signed by the next (RFC 5280 §6.1: the
 * bundle is the path from the leaf up; a root at its end is allowed, not required).
 */
export function validateCertificate(pem: CertPem, now = new Date()): ValidCert {
  const chain = parseBundle(pem.cert);
  const key = parseKey(pem.key);
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key))
    throw new CertificateKeyMismatch(
      `the private key does not match the certificate for ${namesOf(leaf).join(', ') || oneLine(leaf.subject)} (compare "openssl x509 -pubkey" with "openssl pkey -pubout")`,
    );
  chain.forEach((c, i) => {
    const notBefore = c.validFromDate;
    const notAfter = c.validToDate;
    const which = i === 0 ? 'the certificate' : `certificate ${i + 1} of the bundle`;
    const details = {
      position: i + 1,
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
    };
    if (now.getTime() > notAfter.getTime())
      throw new CertificateExpired(`${which} expired on ${notAfter.toISOString()}`, details);
    if (now.getTime() < notBefore.getTime())
      throw new CertificateNotYetValid(
        `${which} is not valid before ${notBefore.toISOString()}`,
        details,
      );
  });
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey))
      throw new CertificateChainBroken(
        `broken chain: certificate ${i + 1} (${oneLine(child.subject)}, issued by ${oneLine(child.issuer)}) is not signed by certificate ${i + 2} of the bundle (${oneLine(parent.subject)}); put the leaf first, then each issuer in order`,
        { position: i + 1 },
      );
  }
  return {
    cert: `${chain.map((c) => c.toString().trim()).join('\n')}\n`,
    key: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    fingerprint: leaf.fingerprint256,
    issuer: oneLine(leaf.issuer),
    subject: oneLine(leaf.subject),
    names: namesOf(leaf),
  };
}

/**
 * Whether `names` (a certificate's) cover `host`. An exact host is covered by itself or by
 * a wildcard one label up (RFC 6125 §6.4.3: `*` stands for exactly one label); a wildcard
 * host (`*.example.com`, a route over every name below) only by that same wildcard.
 */
export function namesCover(names: readonly string[], host: string): boolean {
  const h = host.toLowerCase();
  if (names.includes(h)) return true;
  if (h.startsWith('*.')) return false;
  const dot = h.indexOf('.');
  return dot > 0 && names.includes(`*${h.slice(dot)}`);
}

/** Refuse a certificate that does not name `host`. */
export function assertCovers(valid: ValidCert, host: string): void {
  if (!namesCover(valid.names, host))
    throw new CertificateHostMismatch(
      `the certificate does not cover ${host}: it names ${valid.names.join(', ') || 'no host'}`,
      { host, names: valid.names },
    );
}

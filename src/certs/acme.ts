// The ACME client (RFC 8555) over the `acme-client` library: one account per data dir, whose
// key is made once and kept (0600) so renewals and restarts reuse the same account, and one
// order per host over HTTP-01, answered by the router (challenges.ts).
import { generateKeyPair, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { promisify } from 'node:util';
import type acmeLib from 'acme-client';
import { CertificateOrderFailed, InvalidArgument } from '../errors/index.ts';
import { writeFileWhole } from '../files/index.ts';
import { http01, type ChallengePort } from './challenges.ts';

/** Let's Encrypt production: the default `--acme-directory`. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeOptions {
  dataDir: string;
  /** The CA's directory URL (`--acme-directory`). */
  directoryUrl: string;
  /** Extra CA certificates (PEM) to trust for the ACME server's own HTTPS (`--acme-ca-file`). */
  caFile?: string;
  /** Polling of pending challenges and orders; the library's defaults (5–30 s) unless set. */
  pollMinMs?: number;
  pollMaxMs?: number;
}

export interface IssuedCertificate {
  /** Leaf first, then the chain the CA sent. */
  cert: string;
  key: string;
  notAfter: Date;
}

/** `--acme-directory`: an https URL (RFC 8555 §6.1 requires HTTPS for every ACME request). */
export function parseAcmeDirectory(v: unknown): string {
  let u: URL;
  try {
    u = new URL(String(v));
  } catch {
    throw new InvalidArgument(`--acme-directory "${String(v)}" is not a URL`);
  }
  if (u.protocol !== 'https:')
    throw new InvalidArgument(`--acme-directory "${String(v)}" must be an https URL`);
  return u.href;
}

// RFC 5321 §4.5.3.1 sizes and a plain addr-spec shape: enough to refuse a typo or a header
// injection before it reaches the CA, which checks the address itself.
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$/;

/** The contact address of the ACME account (`certs:auto --email`). */
export function parseAcmeEmail(v: unknown): string {
  if (typeof v !== 'string' || v.length > 254 || !EMAIL.test(v))
    throw new InvalidArgument(`--email "${String(v)}" is not an email address`);
  return v;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--acme-renew-before 30d`, `--acme-check-every 1h`: a whole number of s, m, h or d. */
export function parseAcmeDuration(flag: string, v: unknown): number {
  const m = typeof v === 'string' ? /^([0-9]{1,6})([smhd])$/.exec(v) : null;
  if (m === null || Number(m[1]) === 0)
    throw new InvalidArgument(`--${flag} "${String(v)}" is not a duration (e.g. 30d, 12h, 90s)`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

interface AccountRecord {
  /** The account's URL at each directory it was registered with. */
  [directoryUrl: string]: { url: string; email: string | null };
}

export const acmePaths = (dataDir: string) => ({
  dir: join(dataDir, 'acme'),
  accountKey: join(dataDir, 'acme', 'account.key'),
  account: join(dataDir, 'acme', 'account.json'),
  auto: join(dataDir, 'acme', 'auto.json'),
});

type Acme = typeof acmeLib;
let acmeLoaded: Promise<Acme> | undefined;

/**
 * acme-client (with axios) is the largest library the daemon uses, ~30 MB resident: it is
 * loaded at the first registration or order, so a daemon that never orders never holds it.
 */
function loadAcme(): Promise<Acme> {
  return (acmeLoaded ??= import('acme-client').then((m) => m.default));
}

export class AcmeAccount {
  private readonly opts: AcmeOptions;
  private readonly key: Buffer;
  /** The `caFile`'s PEM, read at open so a bad path fails the start, trusted once loaded. */
  private readonly extraCa: string | undefined;
  private client: acmeLib.Client | null = null;

  private constructor(opts: AcmeOptions, key: Buffer, extraCa: string | undefined) {
    this.opts = opts;
    this.key = key;
    this.extraCa = extraCa;
  }

  /** Load the account key, or make it on the first use; nothing is registered yet. */
  static async open(opts: AcmeOptions): Promise<AcmeAccount> {
    const paths = acmePaths(opts.dataDir);
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    let key: Buffer;
    try {
      key = readFileSync(paths.accountKey);
      // Whoever reads this key can order and revoke certificates for every domain here.
      chmodSync(paths.accountKey, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // What acme-client's createPrivateEcdsaKey('P-256') makes, without loading it.
      const pair = await promisify(generateKeyPair)('ec', {
        namedCurve: 'P-256',
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
      key = Buffer.from(pair.privateKey);
      writeFileWhole(paths.accountKey, key, { mode: 0o600, fsync: true });
    }
    const extraCa = opts.caFile === undefined ? undefined : readFileSync(opts.caFile, 'utf8');
    return new AcmeAccount(opts, key, extraCa);
  }

  get directoryUrl(): string {
    return this.opts.directoryUrl;
  }

  /**
   * Register the account at the directory (once; ACME answers an existing key's account
   * on a second newAccount), or update its contact when `email` changed.
   */
  async register(email?: string): Promise<acmeLib.Client> {
    const acme = await loadAcme();
    if (this.extraCa !== undefined) trustExtraCa(acme, this.extraCa);
    const records = this.records();
    const known = records[this.opts.directoryUrl];
    const client =
      this.client ??
      new acme.Client({
        directoryUrl: this.opts.directoryUrl,
        accountKey: this.key,
        accountUrl: known?.url,
        backoffMin: this.opts.pollMinMs,
        backoffMax: this.opts.pollMaxMs,
      });
    const contact = email === undefined ? undefined : [`mailto:${email}`];
    try {
      if (known === undefined) {
        await client.createAccount({ termsOfServiceAgreed: true, contact });
      } else if (email !== undefined && known.email !== email) {
        await client.updateAccount({ contact });
      }
    } catch (e) {
      throw new CertificateOrderFailed(
        `ACME account at ${this.opts.directoryUrl}: ${errorText(e)}`,
        { directory: this.opts.directoryUrl },
        { cause: e },
      );
    }
    const now = { url: client.getAccountUrl(), email: email ?? known?.email ?? null };
    if (known?.url !== now.url || known?.email !== now.email) {
      writeFileWhole(
        acmePaths(this.opts.dataDir).account,
        `${JSON.stringify({ ...records, [this.opts.directoryUrl]: now }, null, 2)}\n`,
        { mode: 0o600, fsync: true },
      );
    }
    this.client = client;
    return client;
  }

  /**
   * Order a certificate for `host` over HTTP-01: a fresh key (P-256) per order, the
   * challenges pushed to the router and removed again whatever the outcome.
   */
  async order(host: string, port: ChallengePort, email?: string): Promise<IssuedCertificate> {
    const client = await this.register(email);
    const acme = await loadAcme();
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, key);
    const answer = http01(port);
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        // The library's self-check fetches http://<host>/ from this box with the system
        // resolver; behind NAT (no hairpin) that fails where the CA would succeed. The
        // CA's own validation is the one that counts.
        skipChallengeVerification: true,
        challengeCreateFn: answer.create,
        challengeRemoveFn: answer.remove,
      });
    } catch (e) {
      throw new CertificateOrderFailed(
        `certificate order for ${host} failed: ${errorText(e)}`,
        { host },
        { cause: e },
      );
    }
    const leaf = new X509Certificate(cert);
    if (!leaf.checkHost(host))
      throw new CertificateOrderFailed(`the CA issued a certificate that does not name ${host}`, {
        host,
      });
    return { cert, key: key.toString(), notAfter: new Date(leaf.validTo) };
  }

  private records(): AccountRecord {
    try {
      return JSON.parse(
        readFileSync(acmePaths(this.opts.dataDir).account, 'utf8'),
      ) as AccountRecord;
    } catch {
      return {};
    }
  }
}

/**
 * The ACME server's HTTPS is checked against the system's roots plus `caFile` (a test CA
 * such as pebble's). acme-client sends everything through one axios instance, so this is
 * process-wide, as a daemon talks to one ACME server.
 */
let trusted: string | undefined;
function trustExtraCa(acme: Acme, extra: string): void {
  if (trusted === extra) return;
  trusted = extra;
  acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...rootCertificates, extra] });
}

/** acme-client puts the CA's problem detail (RFC 8555 §6.7) in its message; kept to one screen. */
function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.length > 500 ? `${msg.slice(0, 500)}…` : msg;
}

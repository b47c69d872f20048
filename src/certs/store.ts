// The certificate store in `<dataDir>/certs/`: one PEM pair per host per app (keys 0600,
// directories 0700) and one metadata file (`certs.json`, written to a temporary file,
// fsynced and renamed, so a crash leaves the old state or the new one). A JSON file rather
// than a SQLite table: the router-facing set is read whole, and the acme half keeps its
// own plain fields here without a migration.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CertificateInfo } from '../api/index.ts';
import { CertificateNotFound, Conflict } from '../errors/index.ts';
import { writeFileWhole } from '../files/index.ts';
import type { RouterCerts } from '../router/index.ts';
import { assertCovers, validateCertificate, type CertPem, type ValidCert } from './validate.ts';

/** The store's view of a certificate is the API's (src/api): one shape, declared once. */
export type CertInfo = CertificateInfo;
export type CertSource = CertificateInfo['source'];

/** The part of the store the ACME half (acme.ts, renew.ts) plugs into. */
export interface CertSink {
  /** The certificate now serving `host`, if any (its expiry decides renewal). */
  current(host: string): { notAfter: Date; source: CertSource } | null;
  /** Validate and install a new certificate; the router serves it for new handshakes. */
  install(
    app: string,
    host: string,
    pem: { cert: string; key: string },
    source: CertSource,
  ): Promise<void>;
  /** Record an order's failure for `certs APP` (the old certificate keeps serving). */
  recordError(app: string, host: string, message: string | null): void;
}

export interface HostEntry {
  app: string;
  host: string;
  /** The certificate serving it; null while none was installed (an ACME order pending). */
  cert: CertInfo | null;
  lastError: string | null;
  /** The ACME half's state for this host (null: not managed automatically). A plain field. */
  auto: string | null;
}

export interface AppHttps {
  redirectHttps: boolean;
  hsts: boolean;
}

interface StateFile {
  version: 1;
  hosts: { [host: string]: HostEntry };
  default: CertInfo | null;
  apps: { [app: string]: AppHttps };
}

export interface CertStoreOptions {
  dataDir: string;
  /** The platform domain: the default certificate must cover `*.<domain>`. */
  domain: string;
  /** Push the whole set to the router; resolves once it serves it. */
  publish?: (certs: RouterCerts) => Promise<void>;
  now?: () => Date;
}

/** Wildcards become `_.example.com`: `_` is not a host name character, so no name collides. */
const fileBase = (host: string): string => host.replace(/^\*\./, '_.');

export class CertStore implements CertSink {
  readonly dir: string;
  private readonly statePath: string;
  private readonly domain: string;
  private readonly now: () => Date;
  private state: StateFile;
  publish: (certs: RouterCerts) => Promise<void>;

  constructor(opts: CertStoreOptions) {
    this.dir = join(opts.dataDir, 'certs');
    this.statePath = join(this.dir, 'certs.json');
    this.domain = opts.domain;
    this.now = opts.now ?? (() => new Date());
    this.publish = opts.publish ?? (async () => undefined);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.state = this.load();
  }

  // --- CertSink ---------------------------------------------------------------------------

  current(host: string): { notAfter: Date; source: CertSource } | null {
    const c = this.state.hosts[host.toLowerCase()]?.cert;
    return c ? { notAfter: new Date(c.notAfter), source: c.source } : null;
  }

  async install(app: string, host: string, pem: CertPem, source: CertSource): Promise<void> {
    const valid = validateCertificate(pem, this.now());
    this.put(app, host.toLowerCase(), valid, source);
    await this.publish(this.routerCerts());
  }

  recordError(app: string, host: string, message: string | null): void {
    const h = host.toLowerCase();
    const e = this.entry(app, h);
    this.state.hosts[h] = { ...e, lastError: message };
    this.save();
  }

  // --- what the API uses ------------------------------------------------------------------

  /**
   * `certs:add APP`: validate once, then install for each of `hosts` (the app's names) the
   * certificate covers. Refuses when it covers none of them.
   */
  async addForApp(
    app: string,
    hosts: readonly string[],
    pem: CertPem,
  ): Promise<{ hosts: string[]; cert: CertInfo }> {
    const valid = validateCertificate(pem, this.now());
    const covered = hosts.filter((h) => {
      try {
        assertCovers(valid, h);
        return true;
      } catch {
        return false;
      }
    });
    if (covered.length === 0) assertCovers(valid, hosts[0] ?? app); // throws, naming a host
    for (const h of covered) this.entryOwnedBy(app, h); // refuse before writing any
    for (const h of covered) this.put(app, h, valid, 'manual');
    await this.publish(this.routerCerts());
    return { hosts: covered, cert: this.state.hosts[covered[0]!]!.cert! };
  }

  async setDefault(pem: CertPem): Promise<CertInfo> {
    const valid = validateCertificate(pem, this.now());
    assertCovers(valid, `*.${this.domain}`);
    const dir = join(this.dir, '_default');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(dir, 'default.crt'), valid.cert, 0o644);
    writeFileAtomic(join(dir, 'default.key'), valid.key, 0o600);
    this.state.default = info(valid, 'manual', this.now());
    this.save();
    await this.publish(this.routerCerts());
    return this.state.default;
  }

  get defaultCert(): CertInfo | null {
    return this.state.default;
  }

  list(app: string): HostEntry[] {
    return Object.values(this.state.hosts)
      .filter((e) => e.app === app)
      .sort((a, b) => a.host.localeCompare(b.host));
  }

  async remove(app: string, host: string): Promise<void> {
    const h = host.toLowerCase();
    const e = this.state.hosts[h];
    if (e === undefined || e.app !== app)
      throw new CertificateNotFound(`app ${app} has no certificate for ${h}`, { app, host: h });
    this.drop(h);
    this.save();
    await this.publish(this.routerCerts());
  }

  /** A domain left the app (or the app is gone): its certificates stop serving. */
  async forget(app: string, host?: string): Promise<void> {
    const hosts = this.list(app)
      .map((e) => e.host)
      .filter((h) => host === undefined || h === host.toLowerCase());
    for (const h of hosts) this.drop(h);
    if (host === undefined) {
      delete this.state.apps[app];
      rmSync(join(this.dir, app), { recursive: true, force: true });
    }
    this.save();
    if (hosts.length > 0) await this.publish(this.routerCerts());
  }

  https(app: string): AppHttps {
    return this.state.apps[app] ?? { redirectHttps: false, hsts: false };
  }

  setHttps(app: string, value: AppHttps): void {
    this.state.apps[app] = value;
    this.save();
  }

  /** Set the ACME half's plain state field for a host of `app`. */
  setAuto(app: string, host: string, auto: string | null): void {
    const h = host.toLowerCase();
    this.state.hosts[h] = { ...this.entry(app, h), auto };
    this.save();
  }

  /** The whole set as the router takes it (keys read from their 0600 files). */
  routerCerts(): RouterCerts {
    const hosts: RouterCerts['hosts'] = {};
    for (const e of Object.values(this.state.hosts)) {
      if (e.cert === null) continue;
      const base = join(this.dir, e.app, fileBase(e.host));
      hosts[e.host] = {
        cert: readFileSync(`${base}.crt`, 'utf8'),
        key: readFileSync(`${base}.key`, 'utf8'),
      };
    }
    const d = this.state.default;
    const dir = join(this.dir, '_default');
    return {
      hosts,
      default: d
        ? {
            cert: readFileSync(join(dir, 'default.crt'), 'utf8'),
            key: readFileSync(join(dir, 'default.key'), 'utf8'),
            names: d.names,
          }
        : null,
    };
  }

  // --- private ----------------------------------------------------------------------------

  /** The host's entry for `app`, new if none; a host another app holds is refused. */
  private entry(app: string, host: string): HostEntry {
    return this.entryOwnedBy(app, host) ?? { app, host, cert: null, lastError: null, auto: null };
  }

  private entryOwnedBy(app: string, host: string): HostEntry | undefined {
    const e = this.state.hosts[host];
    if (e !== undefined && e.app !== app)
      throw new Conflict(`${host} has a certificate of app ${e.app}; remove it there first`, {
        host,
        app: e.app,
      });
    return e;
  }

  private put(app: string, host: string, valid: ValidCert, source: CertSource): void {
    assertCovers(valid, host);
    const e = this.entry(app, host);
    const dir = join(this.dir, app);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const base = join(dir, fileBase(host));
    // Key first: a crash between the two renames leaves a new key beside the old cert, which
    // routerCerts would push; the metadata (written last) still names the old one, and the
    // next install rewrites both. Either way nothing half-written is ever read.
    writeFileAtomic(`${base}.key`, valid.key, 0o600);
    writeFileAtomic(`${base}.crt`, valid.cert, 0o644);
    this.state.hosts[host] = { ...e, cert: info(valid, source, this.now()), lastError: null };
    this.save();
  }

  private drop(host: string): void {
    const e = this.state.hosts[host];
    if (e === undefined) return;
    const base = join(this.dir, e.app, fileBase(host));
    rmSync(`${base}.crt`, { force: true });
    rmSync(`${base}.key`, { force: true });
    delete this.state.hosts[host];
  }

  private load(): StateFile {
    try {
      const s = JSON.parse(readFileSync(this.statePath, 'utf8')) as StateFile;
      return { version: 1, hosts: s.hosts ?? {}, default: s.default ?? null, apps: s.apps ?? {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return { version: 1, hosts: {}, default: null, apps: {} };
    }
  }

  private save(): void {
    writeFileAtomic(this.statePath, `${JSON.stringify(this.state, null, 2)}\n`, 0o600);
  }
}

function info(v: ValidCert, source: CertSource, now: Date): CertInfo {
  return {
    source,
    notBefore: v.notBefore.toISOString(),
    notAfter: v.notAfter.toISOString(),
    fingerprint: v.fingerprint,
    issuer: v.issuer,
    subject: v.subject,
    names: v.names,
    installedAt: now.toISOString(),
  };
}

/** Never a half file, never a 0644 key; fsynced, as a certificate cannot be made again at once. */
function writeFileAtomic(path: string, text: string, mode: number): void {
  writeFileWhole(path, text, { mode, fsync: true });
}

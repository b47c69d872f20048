// The API's contract, shared by the daemon (which answers it), the CLI and the dashboard
// (which call it): the shape of every JSON response the CLI reads, and the framing of `paas
// run`'s streams. The daemon's handlers are checked against these types (`satisfies`), so a
// field renamed on one side is a type error on the other instead of an `undefined` at run time.
export { encodeFrame, FRAME, FrameDecoder, type FrameType } from './frames.ts';
export type { TokenCreated, TokenInfo, WhoAmI } from './tokens.ts';

/** GET /api/apps */
export interface AppSummary {
  name: string;
  release: string | null;
  createdAt: string;
}

/** A slot's limits as stored (resources:set); absent fields take the daemon's defaults. */
export interface ResourceLimits {
  memoryBytes?: number;
  cpus?: number;
  pids?: number;
  netRaw?: boolean;
}

/** GET/POST /api/apps[/:app] */
export interface AppInfo {
  name: string;
  createdAt: string;
  release: string | null;
  url: string;
  domains: string[];
  formation: Record<string, number>;
  stopped: boolean;
  /** Per process type, `*` for every type. */
  resources: Record<string, ResourceLimits>;
  lock: { holder: string; acquiredAt: string } | null;
}

/** One release, as `releases` lists it. */
export interface ReleaseInfo {
  version: string;
  description: string;
  gitSha: string;
  image: string;
  imageDigest: string;
  buildId: number | null;
  buildpack: string | null;
  processes: Record<string, readonly string[]>;
  configKeys: string[];
  createdAt: string;
  status: string | null;
  error: string | null;
}

/** PATCH /api/apps/:app/config */
export interface ConfigChange {
  config: Record<string, string>;
  release: ReleaseInfo | null;
}

/** POST /api/apps/:app/rollback */
export interface RollbackResult {
  release: ReleaseInfo;
  url: string;
}

/** GET /api/apps/:app/builds */
export interface BuildInfo {
  id: number;
  gitSha: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  image: string | null;
  error: string | null;
}

/** GET /api/apps/:app/domains */
export interface DomainsInfo {
  default: string;
  custom: string[];
}

/** GET /api/apps/:app/ports */
export interface PortsInfo {
  release: string | null;
  port: number | string | null;
  why: string;
  exposed: number[];
}

/** PUT/DELETE /api/apps/:app/ports */
export interface PortsChange {
  port: number | null;
  release: ReleaseInfo | null;
}

/** One row of GET /api/apps/:app/ps */
export interface ProcessInfo {
  process: string;
  type: string;
  n: number;
  release: string;
  state: string;
  startedAt: string | null;
  uptimeSeconds: number | null;
  restarts: number;
  lastExit: string | null;
  ip: string | null;
  port: number | null;
  inRotation: boolean;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  cpuPercent: number | null;
  cpuLimit: number | null;
  id: string;
}

/** PUT /api/apps/:app/formation */
export interface FormationChange {
  formation: Record<string, number>;
}

/** POST /api/images/pull */
export interface ImagePullResult {
  ref: string;
  digest: string;
  lines: string[];
}

/** POST /api/images/gc */
export interface Lines {
  lines: string[];
}

/** POST /api/registry/login */
export interface RegistryLogin {
  host: string;
  username: string;
  message: string;
}

/** POST /api/registry/logout */
export interface RegistryLogout {
  host: string;
  removed: boolean;
}

/** One certificate as the API shows it (never its key). */
export interface CertificateInfo {
  source: 'manual' | 'auto';
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  issuer: string;
  subject: string;
  names: string[];
  installedAt: string;
}

/** GET /api/apps/:app/certs: each of the app's hosts and what serves it over HTTPS. */
export interface CertsInfo {
  app: string;
  redirectHttps: boolean;
  hsts: boolean;
  hosts: {
    host: string;
    /** `own`: a certificate of this app; `default`: the operator's default; `none`. */
    servedBy: 'own' | 'default' | 'none';
    cert: CertificateInfo | null;
    /** The ACME half's state (null: not managed automatically). */
    auto: string | null;
    lastError: string | null;
  }[];
}

/** POST /api/apps/:app/certs and POST /api/certs/default */
export interface CertAdded {
  hosts: string[];
  cert: CertificateInfo;
}

/** PUT /api/apps/:app/redirect-https */
export interface RedirectHttpsInfo {
  redirectHttps: boolean;
  hsts: boolean;
}

/** GET /api/ssh-keys (a list), POST /api/ssh-keys (the added key) */
export interface SshKeyInfo {
  name: string;
  type: string;
  bits: number;
  fingerprint: string;
  comment: string;
  /** Apps the key may push to and fetch from; empty: every app. */
  apps: string[];
  createdAt: string;
}

/** GET /api/ssh-keys/host: the SSH server's host key, for known_hosts. */
export interface SshHostKeyInfo {
  type: string;
  publicKey: string;
  /** `SHA256:…`, as `ssh-keygen -lf` prints it */
  fingerprint: string;
  port: number;
}

/** One log drain, as `drains` lists it: GET/POST/DELETE /api/apps/:app/drains. */
export interface DrainEntry {
  /** `d.<uuid>`: names the drain in `drains:remove` and in its drop reports. */
  id: string;
  /** The URL with its password, query values and token-like path segments shown as `***`. */
  url: string;
  kind: 'syslog+tcp' | 'syslog+tls' | 'https';
  createdAt: string;
  state: 'connecting' | 'up' | 'down';
  /** Lines waiting (in the drain's buffer or sent and not yet confirmed). */
  buffered: number;
  /** Bytes of the lines waiting in the drain's buffer (bounded by the daemon's --drain-buffer). */
  bufferedBytes: number;
  delivered: number;
  dropped: number;
  lastError: string | null;
}

/** One mount of an app (GET /api/apps/:app/storage). */
export interface MountInfo {
  kind: 'volume' | 'host';
  /** The volume name, or the host directory. */
  source: string;
  target: string;
  hostPath: string;
  createdAt: string;
}

/** POST /api/apps/:app/storage and …/storage/unmount: mounts change with the next (re)start. */
export interface StorageChange {
  mount: MountInfo;
  mounts: MountInfo[];
  /** Running processes keep the mounts they started with until restarted. */
  restartNeeded: boolean;
}

/** A backing service as services:info / services:list show it (GET /api/services[/:name]). */
export interface ServiceInfo {
  name: string;
  type: string;
  image: string;
  state: string;
  container: string | null;
  restarts: number;
  /** The URL a link sets, the password masked unless asked for (`reveal=1`). */
  url: string;
  links: { app: string; alias: string; var: string }[];
  createdAt: string;
}

/** POST /api/services/:name/link and …/unlink: the app's config var and its new release. */
export interface ServiceLinkChange {
  service: string;
  app: string;
  var: string;
  release: string | null;
}

/** One custom domain's outcome of `certs:auto` (POST /api/apps/:app/certs/auto). */
export type AutoCertOutcome =
  | { host: string; status: 'issued' | 'valid'; notAfter: string }
  | { host: string; status: 'failed'; error: string; retryAt: string }
  | { host: string; status: 'waiting'; error: string | null; retryAt: string }
  | { host: string; status: 'skipped'; reason: string };

/** GET/POST/DELETE /api/apps/:app/certs/auto */
export interface AutoCertsInfo {
  app: string;
  enabled: boolean;
  email: string | null;
  /** The daemon's ACME directory. */
  directory: string;
  /** Renewal starts this long before expiry. */
  renewBeforeDays: number;
  hosts: { host: string; failures: number; retryAt: string | null; lastError: string | null }[];
  /** What this call did, per custom domain (POST only). */
  outcomes?: AutoCertOutcome[];
}

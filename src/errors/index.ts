// Typed errors for every concern, and the one table that maps them to an HTTP status and a
// CLI exit code. Code elsewhere throws `new InvalidAppName(...)`; the API layer turns any
// PaasError into `{ error: { code, message, details } }` with `status`, and the CLI exits
// with `exitCode`. Anything that is not a PaasError is an internal error (500 / 70).

/** Broad classes of failure: each has one HTTP status and one CLI exit code. */
export const KINDS = {
  invalid: { status: 400, exitCode: 2 },
  unauthorized: { status: 401, exitCode: 4 },
  forbidden: { status: 403, exitCode: 4 },
  notFound: { status: 404, exitCode: 3 },
  conflict: { status: 409, exitCode: 5 },
  tooLarge: { status: 413, exitCode: 2 },
  unsupportedMedia: { status: 415, exitCode: 2 },
  failed: { status: 422, exitCode: 1 },
  unavailable: { status: 503, exitCode: 6 },
  internal: { status: 500, exitCode: 70 },
} as const;

export type ErrorKind = keyof typeof KINDS;
export type ErrorDetails = Readonly<Record<string, unknown>>;

export class PaasError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: ErrorDetails;

  constructor(
    code: string,
    kind: ErrorKind,
    message: string,
    details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = code;
    this.code = code;
    this.kind = kind;
    this.details = details;
  }

  get status(): number {
    return KINDS[this.kind].status;
  }

  get exitCode(): number {
    return KINDS[this.kind].exitCode;
  }

  toJSON(): { code: string; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

type ErrorClass = new (
  message: string,
  details?: ErrorDetails,
  options?: ErrorOptions,
) => PaasError;

function define(code: string, kind: ErrorKind): ErrorClass {
  const cls = class extends PaasError {
    constructor(message: string, details: ErrorDetails = {}, options?: ErrorOptions) {
      super(code, kind, message, details, options);
    }
  };
  Object.defineProperty(cls, 'name', { value: code });
  return cls;
}

// Input at a border.
export const InvalidAppName = define('InvalidAppName', 'invalid');
export const InvalidArgument = define('InvalidArgument', 'invalid');
/** `--scheduler` names no backend we have (src/scheduler). */
export const UnknownScheduler = define('UnknownScheduler', 'invalid');
export const InvalidSpec = define('InvalidSpec', 'invalid');
export const InvalidConfigKey = define('InvalidConfigKey', 'invalid');
export const InvalidImageRef = define('InvalidImageRef', 'invalid');
export const InvalidLayer = define('InvalidLayer', 'invalid');
/** A path that cannot be resolved inside its root: details `{ path, reason: ELOOP|ENOTDIR|EXDEV }`. */
export const InvalidPath = define('InvalidPath', 'invalid');
export const InvalidDockerfile = define('InvalidDockerfile', 'invalid');
export const PayloadTooLarge = define('PayloadTooLarge', 'tooLarge');
export const UnsupportedMediaType = define('UnsupportedMediaType', 'unsupportedMedia');
/** Not an SSH public key (unparsable, several, or a private key): details `{ reason }`. */
export const InvalidSshKey = define('InvalidSshKey', 'invalid');
/** An SSH key type paas does not take (DSA, security keys…): details `{ type }`. */
export const UnsupportedSshKeyType = define('UnsupportedSshKeyType', 'invalid');
/** An RSA key shorter than 2048 bits: details `{ bits, min }`. */
export const WeakSshKey = define('WeakSshKey', 'invalid');
/** storage:mount's `SOURCE:/path`: a bad volume name, container path or refused host path. */
export const InvalidMount = define('InvalidMount', 'invalid');
/** A backing service's name or type (services:create postgres|redis NAME). */
export const InvalidServiceName = define('InvalidServiceName', 'invalid');
// Auth.
export const Unauthorized = define('Unauthorized', 'unauthorized');
/** A valid token whose scope or apps do not cover the request (details: need, app). */
export const Forbidden = define('Forbidden', 'forbidden');
/** `paas login`: the server's certificate is not the one the fingerprint names. */
export const FingerprintMismatch = define('FingerprintMismatch', 'forbidden');
/** An SSH key limited to other apps: details `{ key, app }`. */
export const SshKeyNotAllowed = define('SshKeyNotAllowed', 'forbidden');
// Lookups.
export const AppNotFound = define('AppNotFound', 'notFound');
export const ContainerNotFound = define('ContainerNotFound', 'notFound');
export const ImageNotFound = define('ImageNotFound', 'notFound');
export const ReleaseNotFound = define('ReleaseNotFound', 'notFound');
export const SshKeyNotFound = define('SshKeyNotFound', 'notFound');
export const BlobNotFound = define('BlobNotFound', 'notFound');
/** Anything else a border looked up and did not find (a registry upload, a route). */
export const NotFound = define('NotFound', 'notFound');
export const ServiceNotFound = define('ServiceNotFound', 'notFound');
// State.
export const AppExists = define('AppExists', 'conflict');
export const Conflict = define('Conflict', 'conflict');
/** Another daemon holds the data dir (src/daemon/instance.ts): details `{ dataDir, pid }`. */
export const DataDirInUse = define('DataDirInUse', 'conflict');
/** An SSH key whose name or fingerprint is already stored: details `{ name }` of the holder. */
export const SshKeyExists = define('SshKeyExists', 'conflict');
export const ServiceExists = define('ServiceExists', 'conflict');
/** A domain the platform itself answers on (the dashboard's host names): no app may claim it. */
export const ReservedDomain = define('ReservedDomain', 'conflict');
// Pipeline.
export const BuildFailed = define('BuildFailed', 'failed');
/** A build step ran into one of the build limits; `details.limit` names it (memory, pids, disk, timeout). */
export const BuildLimitExceeded = define('BuildLimitExceeded', 'failed');
/** engines.node that no Node release satisfies (an end-of-life one is not refused). */
export const NodeVersionUnsatisfiable = define('NodeVersionUnsatisfiable', 'failed');
export const DeployFailed = define('DeployFailed', 'failed');
export const HealthCheckFailed = define('HealthCheckFailed', 'failed');
export const RuntimeError = define('RuntimeError', 'failed');
/** A bounded wait ran out (a container that did not exit in time); callers may wait again. */
export const WaitTimeout = define('WaitTimeout', 'failed');
export const Unsupported = define('Unsupported', 'unavailable');
/** A registry could not be reached or did not serve an image (pulls). */
export const RegistryUnavailable = define('RegistryUnavailable', 'unavailable');
// Certificates (src/certs): an operator's certificate that cannot serve, each with its reason.
/** The PEM does not parse as a certificate bundle or a private key. */
export const InvalidCertificate = define('InvalidCertificate', 'invalid');
export const CertificateKeyMismatch = define('CertificateKeyMismatch', 'invalid');
/** Outside its validity window: details `{ notBefore, notAfter }`. */
export const CertificateExpired = define('CertificateExpired', 'invalid');
export const CertificateNotYetValid = define('CertificateNotYetValid', 'invalid');
/** A certificate in the bundle is not signed by the next one: details `{ position }`. */
export const CertificateChainBroken = define('CertificateChainBroken', 'invalid');
/** None of the certificate's names covers the host: details `{ host, names }`. */
export const CertificateHostMismatch = define('CertificateHostMismatch', 'invalid');
export const CertificateNotFound = define('CertificateNotFound', 'notFound');
/** An ACME order that did not end in a certificate (issue 18); the CA's reason is the message. */
export const CertificateOrderFailed = define('CertificateOrderFailed', 'failed');
// Router.
export const InvalidRouteTable = define('InvalidRouteTable', 'invalid');
export const RouterUnavailable = define('RouterUnavailable', 'unavailable');
// Log drains.
/** A drain URL paas cannot ship to: details `{ scheme, reason }`, never the URL itself (it may hold a password). */
export const InvalidDrainUrl = define('InvalidDrainUrl', 'invalid');
export const DrainNotFound = define('DrainNotFound', 'notFound');
/** The app has that drain already, or as many drains as it may have. */
export const DrainExists = define('DrainExists', 'conflict');

/**
 * One line for a person (push output, logs, ps): the message, plus the step and exit code a
 * pipeline error carries. Anything that is not a PaasError shows only its message.
 */
export function describeError(e: unknown): string {
  if (e instanceof PaasError) {
    const { step, exitCode } = e.details;
    if (typeof step !== 'string' && typeof step !== 'number') return e.message;
    const code = exitCode !== undefined ? `, exit code ${String(exitCode)}` : '';
    return `${e.message} (step ${String(step)}${code})`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Status and body for any thrown value; unknown errors never leak their message. */
export function toHttp(err: unknown): {
  status: number;
  body: { error: { code: string; message: string; details: ErrorDetails } };
} {
  if (err instanceof PaasError) return { status: err.status, body: { error: err.toJSON() } };
  return {
    status: 500,
    body: { error: { code: 'Internal', message: 'internal error', details: {} } },
  };
}

/** CLI exit code for a thrown value or an API error code returned over HTTP. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PaasError) return err.exitCode;
  return KINDS.internal.exitCode;
}

export function exitCodeForStatus(status: number): number {
  for (const k of Object.values(KINDS)) if (k.status === status) return k.exitCode;
  return status >= 500 ? KINDS.internal.exitCode : 1;
}

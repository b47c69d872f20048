// Certificates the router serves over HTTPS: the store in the data dir and the one
// validator of a certificate. The ACME half plugs in through `CertSink`.
export {
  CertStore,
  type CertSink,
  type CertSource,
  type CertInfo,
  type HostEntry,
  type AppHttps,
  type CertStoreOptions,
} from './store.ts';
export {
  validateCertificate,
  assertCovers,
  namesCover,
  type CertPem,
  type ValidCert,
} from './validate.ts';
// The ACME half: an account and orders over HTTP-01 (acme.ts, challenges.ts) and the
// daemon's scheduler of automatic certificates (renew.ts), which hands what it gets to a
// `CertSink` (the store).
export {
  AcmeAccount,
  LETS_ENCRYPT_DIRECTORY,
  parseAcmeDirectory,
  parseAcmeDuration,
  parseAcmeEmail,
  type AcmeOptions,
  type IssuedCertificate,
} from './acme.ts';
export type { ChallengePort } from './challenges.ts';
export {
  AutoCerts,
  DEFAULT_CHECK_EVERY_MS,
  DEFAULT_RENEW_BEFORE_MS,
  type AutoCertsOptions,
  type AutoSink,
  type AutoStatus,
  type HostOutcome,
  type Issuer,
} from './renew.ts';

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

// The host's CA bundle in RUN steps (run.ts): where it is on the host and where the build
// container sees it. Its own file so the builder's public surface can export these without
// loading the executor (index.ts).

/** The bundle bound read-only into every RUN container, when the host has it. */
export const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Where the build container sees the host's CA bundle (the path every distro's TLS reads). */
export const CA_TARGET = '/etc/ssl/certs/ca-certificates.crt';

/** Env given to RUN only (never persisted in the image config). */
export function caEnv(): Record<string, string> {
  return { SSL_CERT_FILE: CA_TARGET, NODE_EXTRA_CA_CERTS: CA_TARGET, npm_config_cafile: CA_TARGET };
}

// Timeouts and size limits of an HTTP listener that faces untrusted clients: the router's
// ports, and the daemon's API port (API, dashboard, git, registry) with the same figures.
import type { ServerOptions } from 'node:http';

/** Body limit for apps that set none: large uploads pass, unbounded ones do not. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024 * 1024;

export interface Limits {
  /** Whole request head must arrive within this (slowloris on headers → 408). */
  headersTimeoutMs: number;
  /** Longest silence inside a request body (slowloris on the body → 408). */
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxHeaderBytes: number;
  upstreamTimeoutMs: number;
  upstreamBodyTimeoutMs: number;
  connectTimeoutMs: number;
  drainTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  headersTimeoutMs: 20_000,
  bodyTimeoutMs: 30_000,
  keepAliveTimeoutMs: 60_000,
  maxHeaderBytes: 16 * 1024,
  upstreamTimeoutMs: 60_000,
  upstreamBodyTimeoutMs: 300_000,
  connectTimeoutMs: 5_000,
  drainTimeoutMs: 30_000,
};

/** Options for `http.createServer` that apply `limits` to a listener. */
export function listenerOptions(limits: Limits): ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    // Whole-request time is not bounded (uploads, pushes and streams may be long); body
    // silence is, per request (router: proxy.ts; API port: daemon/server.ts).
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks for head timeouts: the default 30 s would let a slowloris
    // hold a socket for up to headersTimeout + 30 s.
    connectionsCheckingInterval: 1000,
  };
}

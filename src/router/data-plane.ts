// The data plane behind the front door (ARCHITECTURE.md: "The front door outlives the
// daemon"): what the control plane (the daemon) needs from whatever forwards the requests.
// Two planes implement it and pass one contract suite (routing/streaming/switch/guard tests,
// run once per plane): `node` (our own router process, node-plane.ts) and `haproxy`
// (Debian's haproxy driven over its runtime socket, haproxy/plane.ts). Drain accounting,
// certificates and the route table are the control plane's; the plane forwards.
import { createServer } from 'node:net';
import { InvalidArgument, RouterUnavailable } from '../errors/index.ts';
import type { Limits } from './limits.ts';
import type { RouterCerts } from './certs.ts';
import type { Backend, RouteTable } from './table.ts';

export const PLANE_KINDS = ['node', 'haproxy'] as const;
export type PlaneKind = (typeof PLANE_KINDS)[number];

/**
 * The plane when `--router` is not given, chosen by measurement (README: "Data planes"):
 * haproxy serves more requests per second than the node plane at a lower p99, in a twelfth
 * of its memory, and passes the same contract suite.
 */
export const DEFAULT_PLANE: PlaneKind = 'haproxy';

/** `--router`'s validator: an unknown plane fails loudly instead of falling back. */
export function parsePlaneKind(raw: unknown): PlaneKind {
  if (typeof raw === 'string' && (PLANE_KINDS as readonly string[]).includes(raw))
    return raw as PlaneKind;
  throw new InvalidArgument(
    `unknown data plane ${JSON.stringify(raw)}: expected one of ${PLANE_KINDS.join(', ')}`,
    { plane: String(raw) },
  );
}

export interface PlaneConfig {
  dataDir: string;
  httpPort: number;
  httpsPort?: number;
  host?: string;
  /** Platform domain for the empty table of a first start; a persisted table keeps its own. */
  domain: string;
  /** node: router worker processes (default one per core). haproxy: threads. */
  workers?: number;
  limits?: Partial<Limits>;
  /**
   * The data dir's plane of the other kind still serves on these ports (a changed
   * `--router`): bind beside it (both use SO_REUSEPORT) instead of refusing a held port.
   * Set by handover.ts, not by callers.
   */
  beside?: boolean;
}

export interface SwitchOptions {
  /** Give up waiting for the old backends after this long (default: the plane's, 30 s). */
  drainTimeoutMs?: number;
}

/** One backend of one app as the plane sees it now: drain waits for `inflight` to reach 0. */
export interface BackendLoad {
  app: string;
  upstream: string;
  id?: string;
  /** Requests and upgraded connections in flight. */
  inflight: number;
  /** Requests served so far. */
  requests: number;
  /** Still in the table (false: retired, draining). */
  active: boolean;
}

export interface PlaneHealth {
  kind: PlaneKind;
  pid: number;
  httpPort: number;
  httpsPort: number | undefined;
  uptimeMs: number;
  /** Processes (node) or threads (haproxy) serving. */
  workers: number;
}

export interface PlaneConnected {
  started: boolean;
  pid: number;
  /**
   * The data dir's plane of the other kind, found serving when this one started on its
   * table (handover.ts): the caller stops it once this one has its certificates too.
   */
  replaced?: DataPlane;
}

export interface DataPlane {
  readonly kind: PlaneKind;
  /** Where the plane appends one JSON line per request (access-log.ts's format). */
  readonly accessLogPath: string;
  /**
   * Start the plane detached if it does not answer, else adopt the one already running
   * (a previous daemon's): it keeps serving its last table on its own.
   */
  connect(): Promise<PlaneConnected>;
  /**
   * If the plane process does not answer (it was killed or crashed), start it again on its
   * last table and certificates, as connect does; null when it answered. A switch that
   * finds the process gone at the same time shares the start: never two processes.
   */
  revive(): Promise<PlaneConnected | null>;
  /** Publish the whole table. Resolves once backends that left it have drained. */
  setRoutes(table: RouteTable, opts?: SwitchOptions): Promise<{ drained: boolean }>;
  /**
   * Point `app` at `backends`. Resolves when the backends it no longer uses have no request
   * or upgraded connection in flight (`drained: true`), or at the drain timeout (`false`).
   */
  switch(app: string, backends: Backend[], opts?: SwitchOptions): Promise<{ drained: boolean }>;
  routes(): Promise<RouteTable>;
  /** Per-backend in-flight counts (what a drain waits on). */
  load(): Promise<BackendLoad[]>;
  health(): Promise<PlaneHealth>;
  /**
   * Replace the whole certificate set served on the HTTPS port (certs.ts: per host, the
   * wildcards and the operator's default); new handshakes get it, open connections keep
   * theirs. The plane re-sends the last set to a plane process it (re)connects to. A plane
   * that cannot serve HTTPS throws Unsupported.
   */
  setCerts(certs: RouterCerts): Promise<void>;
  /** The certificate set the plane serves, without keys: hosts, and the default's names. */
  certs(): Promise<{ hosts: string[]; default: string[] | null }>;
  /**
   * ACME HTTP-01 (challenge.ts): answer `GET /.well-known/acme-challenge/<token>` on the HTTP
   * port with `keyAuthorization`, for any host, until removed. A plane that cannot throws
   * Unsupported.
   */
  addChallenge(token: string, keyAuthorization: string): Promise<void>;
  removeChallenge(token: string): Promise<void>;
  /** Let go of the plane; it keeps serving. */
  close(): void;
  /** Stop the plane process itself (drains first). */
  stop(): Promise<void>;
}

/**
 * Refuses a listening port another process holds, before a plane starts on it: the planes
 * bind with SO_REUSEPORT (node workers, haproxy's reloads), so a bind of their own could
 * share the port with a stranger instead of failing.
 */
export function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new RouterUnavailable(
              `router: port ${port} on ${host} is already in use by another process`,
              { port },
            )
          : e,
      ),
    );
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

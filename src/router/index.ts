// The router's public surface (ARCHITECTURE.md: the front door that outlives the daemon).
// `runRouter` is the `paas router` process; the daemon picks a `DataPlane` with
// `createDataPlane` (node: `ensureRouterRunning`/`RouterClient` underneath; haproxy);
// everything else in this folder is private.
import type { RouterOptions } from './router.ts';
export type { RouterOptions, RouterStats, PingReply } from './router.ts';

/**
 * `paas router`, the node plane's process. Loaded when called: the daemon imports this
 * folder for its DataPlane and must not hold the proxy (undici, http-proxy, the pages) idle.
 */
export async function runRouter(opts: RouterOptions): Promise<void> {
  return (await import('./router.ts')).runRouter(opts);
}
export {
  RouterClient,
  ensureRouterRunning,
  type EnsureOptions,
  type SwitchOptions,
} from './client.ts';
export { parseRouteTable, type RouteTable, type AppRoute, type Backend } from './table.ts';
export { accessLogPath } from './access-log.ts';
export { DEFAULT_LIMITS, listenerOptions, type Limits } from './limits.ts';
export { LOGIN_COOKIE, SESSION_COOKIE } from './headers.ts';
export { parseRouterCerts, NO_CERTS, type RouterCerts, type RouterCert } from './certs.ts';
export {
  PLANE_KINDS,
  DEFAULT_PLANE,
  parsePlaneKind,
  type DataPlane,
  type PlaneKind,
  type PlaneConfig,
  type PlaneConnected,
  type PlaneHealth,
  type BackendLoad,
} from './data-plane.ts';
export { createDataPlane } from './select.ts';
export { isChallengeToken } from './challenge.ts';

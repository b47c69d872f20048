// The router process: data planes (in-process or cluster workers), the control socket the
// daemon talks to, the persisted table it reloads after its own restart, the pid file and
// access-log rotation.
import { mkdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { availableParallelism } from 'node:os';
import { InvalidArgument, RouterUnavailable } from '../errors/index.ts';
import { isAppName } from '../apps/name.ts';
import { accessLogPath, rotateIfLarge } from './access-log.ts';
import { CertIndex, parseRouterCerts, type RouterCerts } from './certs.ts';
import { isChallengeToken, parseChallenge } from './challenge.ts';
import { answers, listenControl } from './control.ts';
import { assertPortFree } from './data-plane.ts';
import type { PlaneOptions } from './plane.ts';
import { ClusterPlanes, LocalPlanes, type Planes, type WorkerStats } from './planes.ts';
import { DEFAULT_LIMITS, type Limits } from './proxy.ts';
import { parseBackends, parseRouteTable, type RouteTable } from './table.ts';
import { routerPaths } from './paths.ts';
import { writeFileWhole } from '../files/index.ts';
import { loadTable, saveTable } from './routes-file.ts';

export { routerPaths };

export interface RouterOptions {
  dataDir: string;
  httpPort: number;
  httpsPort?: number;
  /** Data-plane processes; 1 serves from the router process itself. Default: one per core. */
  workers?: number;
  host?: string;
  /** Platform domain for the empty table of a first start; a persisted table keeps its own. */
  domain: string;
  limits?: Partial<Limits>;
  /** Rotate access.log past this size. */
  accessLogMaxBytes?: number;
  /** Bind beside the data dir's other plane, which is handing over (data-plane.ts). */
  beside?: boolean;
}

export interface RouterHandle {
  readonly httpPort: number;
  readonly httpsPort: number | undefined;
  close(): Promise<void>;
}

export interface RouterStats {
  pid: number;
  uptimeMs: number;
  workers: WorkerStats[];
}

export interface PingReply {
  pid: number;
  workers: number;
  httpPort: number;
  httpsPort: number | undefined;
  uptimeMs: number;
}

/** `paas router`: start, then serve until SIGTERM/SIGINT, then drain and stop. */
export async function runRouter(opts: RouterOptions): Promise<void> {
  const handle = await startRouter(opts);
  const say = (msg: string): void =>
    void process.stderr.write(`${JSON.stringify({ time: Date.now(), source: 'router', msg })}\n`);
  say(
    `router ${process.pid} serving http on ${handle.httpPort}${handle.httpsPort ? `, https on ${handle.httpsPort}` : ''}`,
  );
  // A bug in one request must not close the front door of every app; log it and go on.
  process.on('uncaughtException', (err) => say(`uncaught: ${err.stack ?? String(err)}`));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  say('router stopping: draining');
  await handle.close();
}

export async function startRouter(opts: RouterOptions): Promise<RouterHandle> {
  const paths = routerPaths(opts.dataDir);
  // Before binding anything: with SO_REUSEPORT a second router would silently share the ports.
  if (await answers(paths.socket)) {
    throw new RouterUnavailable(`a router is already running for ${opts.dataDir}`, {
      socket: paths.socket,
    });
  }
  mkdirSync(paths.dir, { recursive: true });
  mkdirSync(paths.logDir, { recursive: true });
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const started = Date.now();
  let table = loadTable(paths.routes) ?? parseRouteTable({ apps: {}, domain: opts.domain });
  // Certificates live in memory only: the daemon pushes them at its start and on every change,
  // and this process keeps serving the last set while the daemon is away.
  let certs: RouterCerts = { hosts: {}, default: null };

  const planeOpts: PlaneOptions = {
    host: opts.host ?? '0.0.0.0',
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    limits,
    accessLogPath: accessLogPath(opts.dataDir),
    reusePort: true,
  };
  // Same reason, across data dirs: a plain bind fails where another process (an nginx, a
  // second install's router) already listens, which SO_REUSEPORT would hide.
  for (const port of [opts.httpPort, opts.httpsPort]) {
    if (port !== undefined && port !== 0 && opts.beside !== true)
      await assertPortFree(planeOpts.host ?? '0.0.0.0', port);
  }
  const workers = opts.workers ?? availableParallelism();
  if (!Number.isInteger(workers) || workers < 1)
    throw new InvalidArgument(`router: workers must be a positive integer, not ${workers}`);
  const log = (msg: string): void =>
    void process.stderr.write(`${JSON.stringify({ time: Date.now(), source: 'router', msg })}\n`);
  const planes: Planes =
    workers === 1
      ? await LocalPlanes.start(planeOpts, table)
      : await ClusterPlanes.start(workers, planeOpts, table, log);

  const setTable = (next: RouteTable, drainTimeoutMs: number): Promise<boolean> => {
    table = next;
    // Persist before the swap completes: a router killed mid-drain restarts on the new table.
    saveTable(paths.routes, next);
    return planes.apply(next, drainTimeoutMs);
  };

  // ACME HTTP-01 answers of orders in progress: held in memory only, since an order does
  // not outlive a restarted router (the daemon retries it).
  const challenges = new Map<string, string>();
  const pushChallenges = (): Promise<void> => planes.setChallenges(Object.fromEntries(challenges));

  let control: Server;
  try {
    control = await listenControl(paths.socket, async (op, args) => {
      const a = (args ?? {}) as Record<string, unknown>;
      const drainTimeoutMs =
        typeof a.drainTimeoutMs === 'number' && a.drainTimeoutMs >= 0
          ? a.drainTimeoutMs
          : limits.drainTimeoutMs;
      switch (op) {
        case 'ping':
          return {
            pid: process.pid,
            workers: planes.count,
            httpPort: planes.httpPort,
            httpsPort: planes.httpsPort,
            uptimeMs: Date.now() - started,
          } satisfies PingReply;
        case 'routes':
          return table;
        case 'setRoutes':
          return { drained: await setTable(parseRouteTable(a.table), drainTimeoutMs) };
        case 'switch': {
          if (!isAppName(a.app))
            throw new InvalidArgument(`switch: invalid app name ${JSON.stringify(a.app)}`);
          const app = a.app as string;
          const backends = parseBackends(a.backends, app);
          const prev = table.apps[app] ?? { domains: [], backends: [] };
          const next: RouteTable = {
            ...table,
            apps: { ...table.apps, [app]: { ...prev, backends } },
          };
          return { drained: await setTable(next, drainTimeoutMs) };
        }
        case 'setCerts': {
          const next = parseRouterCerts(a.certs);
          new CertIndex(next); // throws on a PEM OpenSSL refuses, before any worker sees it
          await planes.setCerts(next);
          certs = next;
          return { hosts: Object.keys(next.hosts).length, default: next.default !== null };
        }
        case 'certs':
          // What is served, without the keys.
          return { hosts: Object.keys(certs.hosts).sort(), default: certs.default?.names ?? null };
        case 'addChallenge': {
          const c = parseChallenge(a);
          challenges.set(c.token, c.keyAuthorization);
          await pushChallenges();
          return { challenges: challenges.size };
        }
        case 'removeChallenge': {
          if (!isChallengeToken(a.token))
            throw new InvalidArgument('removeChallenge: token is not an ACME token');
          challenges.delete(a.token);
          await pushChallenges();
          return { challenges: challenges.size };
        }
        case 'stats':
          return {
            pid: process.pid,
            uptimeMs: Date.now() - started,
            workers: await planes.stats(),
          } satisfies RouterStats;
        default:
          throw new InvalidArgument(`unknown router operation ${JSON.stringify(op)}`);
      }
    });
  } catch (err) {
    await planes.close(0);
    throw err;
  }
  writeFileWhole(paths.pid, `${process.pid}\n`, { mode: 0o600 });

  const maxLog = opts.accessLogMaxBytes ?? 64 * 1024 * 1024;
  const rotator = setInterval(() => {
    try {
      if (rotateIfLarge(planeOpts.accessLogPath!, maxLog, 5)) planes.reopenLogs();
    } catch (err) {
      log(`access log rotation failed: ${(err as Error).message}`);
    }
  }, 2000);
  rotator.unref();

  return {
    httpPort: planes.httpPort,
    httpsPort: planes.httpsPort,
    async close() {
      clearInterval(rotator);
      await new Promise<void>((r) => control.close(() => r()));
      await planes.close(limits.drainTimeoutMs);
      rmSync(paths.pid, { force: true });
    },
  };
}

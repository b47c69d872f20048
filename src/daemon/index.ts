// `paas daemon`: wires state, logs, runtime, image store, builder, router and the pipeline,
// serves the API, git and the registry on one port, and recovers what a previous daemon left.
import { existsSync, mkdirSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { describeError, InvalidArgument } from '../errors/index.ts';
import { openState, platformHosts, type AppName } from '../apps/index.ts';
import { CertStore } from '../certs/index.ts';
import type { createDashboard } from '../dashboard/index.ts';
import type { BaseImageProvider, BaseImages } from '../baseimages/index.ts';
import { build, defaultBuildLimits, type BuildLimits } from '../builder/index.ts';
import {
  adopt,
  backoffMs,
  handlePush,
  scale,
  withSupervisor,
  type AppLimits,
} from '../deploy/index.ts';
import { ServiceManager } from '../services/index.ts';
import { parseProcessType } from '../apps/index.ts';
import { createGitHttpHandler, isGitRequest, listenHookSocket } from '../git/index.ts';
import {
  DEFAULT_RETENTION_BYTES,
  DrainManager,
  LogCollector,
  LogStore,
  type DrainOptions,
} from '../logs/index.ts';
import { openStore } from '../registry/index.ts';
import { createRegistryHandler } from '../registry/server.ts';
import { createDataPlane, DEFAULT_PLANE } from '../router/index.ts';
import { createRuntime, Network } from '../runtime/index.ts';
import type { SchedulerName } from '../scheduler/index.ts';
import { ensureHostKey, SshKeys, startSshServer, type SshServer } from '../ssh/index.ts';
import {
  AcmeAccount,
  AutoCerts,
  DEFAULT_CHECK_EVERY_MS,
  DEFAULT_RENEW_BEFORE_MS,
  LETS_ENCRYPT_DIRECTORY,
} from '../certs/index.ts';
import { parseAppName } from '../apps/index.ts';
import { createApi } from './api.ts';
import { claimDataDir } from './instance.ts';
import { Auth, ensureAdminToken, registryAccess, remoteOf, requestToken } from './auth.ts';
import { RouterLink } from './router-link.ts';
import { certsInfo } from './certs-api.ts';
import { createPortServer, portHandler } from './server.ts';
import { createTlsPortServer, type PortServer, type TlsFiles } from './tls.ts';

export interface DaemonOptions {
  dataDir: string;
  apiPort: number;
  apiHost?: string;
  httpPort: number;
  /** The router's HTTPS port (the CLI's default is 443; 0 picks a free one); none if undefined. */
  httpsPort?: number;
  domain: string;
  runtime: string;
  /** Where app processes run (src/scheduler); default local, our runtime on this box. */
  scheduler?: SchedulerName;
  /** `--scheduler swarm`: the manager engine's socket (`--docker-socket`). */
  dockerSocket?: string;
  /**
   * `--scheduler swarm`: our registry as the Swarm nodes reach it, `host:port`
   * (`--registry-address`; default 127.0.0.1 and the API port, enough for a single node).
   */
  registryAddress?: string;
  /** Data plane: `node` or `haproxy` (src/router/data-plane.ts); default DEFAULT_PLANE (src/router). */
  router?: string;
  /** Largest git push accepted, bytes: the pack and the commit's files (default 1 GiB). */
  maxPushBytes?: number;
  /** RUN step limits and disk budget of builds (default defaultBuildLimits()). */
  buildLimits?: BuildLimits;
  /** Log retention per app, bytes (default 50 MiB). */
  logRetentionBytes?: number;
  startTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL for retired processes (default 30 s). */
  stopGraceMs?: number;
  /** Memory and pids of every app process without resources:set (default 512 MiB, 4096). */
  defaultLimits?: AppLimits;
  /** Docker Hub mirrors (`--registry-mirror`), tried in order before Docker Hub. */
  registryMirrors?: string[];
  /** HTTPS on the API port (`--tls-cert`/`--tls-key`); plain HTTP then from loopback only. */
  tls?: TlsFiles;
  /** The SSH server's port for git (`--ssh-port`, default 2222), on the API's address. */
  sshPort?: number;
  /** Log drains' buffer, backoff and report timing, and extra CAs (`--drain-ca`) for TLS drains. */
  drains?: DrainOptions;
  /** ACME directory of automatic certificates (`--acme-directory`, Let's Encrypt by default). */
  acmeDirectory?: string;
  /** Extra CA to trust for the ACME server's HTTPS (`--acme-ca-file`; a test CA). */
  acmeCaFile?: string;
  /** Renew automatic certificates this long before expiry (`--acme-renew-before`, 30 days). */
  acmeRenewBeforeMs?: number;
  /** How often the renewal scheduler looks (`--acme-check-every`, 1 hour). */
  acmeCheckEveryMs?: number;
}

export interface Daemon {
  apiPort: number;
  sshPort: number;
  close(): Promise<void>;
}

/** The --build-* flags' validator, for the CLI's `daemon` command. */
export { parseBuildLimits } from '../builder/index.ts';

export const DEFAULT_MAX_PUSH_BYTES = 1024 ** 3;
export const DEFAULT_SSH_PORT = 2222;

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  // Before anything reads or writes the data dir: a second daemon on it stops here.
  const claim = await claimDataDir(opts.dataDir);
  try {
    const daemon = await startClaimed(opts);
    return {
      ...daemon,
      close: async () => {
        await daemon.close();
        await claim.release();
      },
    };
  } catch (e) {
    await claim.release();
    throw e;
  }
}

async function startClaimed(opts: DaemonOptions): Promise<Daemon> {
  const maxPushBytes = opts.maxPushBytes ?? DEFAULT_MAX_PUSH_BYTES;
  const buildLimits = opts.buildLimits ?? defaultBuildLimits();
  const log = pino({ base: { source: 'paas' } });
  const hadToken = existsSync(join(opts.dataDir, 'admin-token'));
  // Every refusal is a platform event: who (the token's id, never its secret), what, from where.
  const auth = new Auth(opts.dataDir, (r) => log.warn({ event: 'auth refused', ...r }, r.reason));
  if (!hadToken) log.info(`admin token written to ${join(opts.dataDir, 'admin-token')}`);

  const state = openState(opts.dataDir);
  const runtime = createRuntime(opts.runtime, { dataDir: opts.dataDir });
  const store = await openStore(opts.dataDir, { pull: { mirrors: opts.registryMirrors ?? [] } });
  const logs = new LogStore({
    dir: join(opts.dataDir, 'logs', 'apps'),
    retentionBytes: opts.logRetentionBytes ?? DEFAULT_RETENTION_BYTES,
  });
  // Drains follow the log store, so they start before anything (recovery, the collector)
  // appends: what a restarted daemon reads from the files it missed is shipped too.
  const drains = new DrainManager({
    db: state.db,
    logs,
    drain: opts.drains,
    log: (msg, extra) => log.info(extra ?? {}, msg),
  });
  drains.start();
  const plane = createDataPlane(opts.router ?? DEFAULT_PLANE, {
    dataDir: opts.dataDir,
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    domain: opts.domain,
  });
  const collector = new LogCollector(logs, { routerAccessLog: plane.accessLogPath });
  const certs = new CertStore({ dataDir: opts.dataDir, domain: opts.domain });
  const router = new RouterLink(plane, {
    certs: () => certs.routerCerts(),
    https: (app) => certs.https(app),
  });
  certs.publish = (set) => router.setCerts(set);
  const r = await router.connect();
  log.info(
    `router (${plane.kind}) ${r.started ? 'started' : 'adopted'} (pid ${r.pid}) on http port ${opts.httpPort}` +
      (r.replaced === undefined ? '' : `, taking over from the ${r.replaced} plane, now stopped`) +
      (r.httpsPort !== undefined ? `, https port ${r.httpsPort}` : ''),
  );
  const routerWatch = watchRouter(router, log);
  if (r.httpsPort === undefined && opts.httpsPort !== undefined)
    log.warn(
      `the ${plane.kind} data plane has no HTTPS listener (adopted from before --https-port, or a plane without HTTPS yet): certificates are kept and served once it has one`,
    );

  // The base images (semver, their recipes and release lists) load at their first use: a
  // build's FROM or Node engines, or a service's image (test/lazy-imports.test.ts).
  let loadingBases: Promise<BaseImages> | undefined;
  const bases = (): Promise<BaseImages> =>
    (loadingBases ??= import('../baseimages/index.ts').then((m) => new m.BaseImages({ store })));
  const baseImages: BaseImageProvider = {
    nodeReleases: async () => (await bases()).nodeReleases(),
    prepare: async (ref, say) => (await bases()).prepare(ref, say),
  };
  const deps = withSupervisor({
    dataDir: opts.dataDir,
    domain: opts.domain,
    httpPort: opts.httpPort,
    state,
    logs,
    collector,
    runtime,
    store,
    router,
    build,
    buildLimits,
    maxPushBytes,
    baseImages,
    startTimeoutMs: opts.startTimeoutMs,
    stopGraceMs: opts.stopGraceMs,
    defaultLimits: opts.defaultLimits,
  });
  // The containers' borders (runtime/firewall.ts) go on before any container is adopted or
  // started: a reboot or a flushed ruleset would otherwise leave running apps without them.
  const net = new Network({});
  try {
    // Apps call each other by their public URLs, which resolve to this host's router.
    net.setPublicPorts(
      resolve(opts.dataDir),
      [opts.httpPort, r.httpsPort].filter((p): p is number => p !== undefined && p > 0),
    );
    await net.ensureBridge();
  } finally {
    net.close();
  }
  log.info(`network: bridge ${net.bridge} up, container borders applied`);
  // `--scheduler swarm` (docs/scaling.md): the app processes are Swarm services; it routes
  // their tasks once before the route table is published below, and follows them after.
  let listening = 0;
  if (opts.scheduler === 'swarm') {
    const { startSwarmScheduler } = await import('../scheduler/index.ts');
    deps.scheduler = await startSwarmScheduler(deps, {
      socket: opts.dockerSocket,
      registry: () => opts.registryAddress ?? `127.0.0.1:${listening}`,
      token: () => ensureAdminToken(opts.dataDir).token,
      router,
      onError: (e) => log.warn({ err: describeError(e) }, 'swarm: following the tasks failed'),
    });
    log.info(`scheduler swarm: Docker engine ${opts.dockerSocket ?? 'at /var/run/docker.sock'}`);
  }
  const report = await adopt(deps, (m) => log.warn(m));
  log.info(report, 'recovered state');
  // Backing services outlive the daemon like app containers: watch them again, start any
  // that is down.
  const services = new ServiceManager({
    dataDir: opts.dataDir,
    db: state.db,
    runtime,
    store,
    buildImage: async (kind, say) => (await bases()).service(kind, say),
    backoff: (n) => backoffMs(n),
    log: (msg, extra) => log.warn(extra ?? {}, msg),
  });
  log.info(await services.adoptAll(), 'services recovered');
  collector.start();

  const reposDir = join(opts.dataDir, 'git');
  mkdirSync(reposDir, { recursive: true });
  const hookSocket = join(opts.dataDir, 'run', 'git-hook.sock');
  const hooks: NetServer = await listenHookSocket(hookSocket, reposDir, (push, out) => {
    log.info(
      { app: push.app, refs: push.refs.map((x) => `${x.ref}@${x.newSha.slice(0, 7)}`) },
      'push',
    );
    return handlePush(deps, push, out);
  });
  // The app rules of a push and a fetch, shared by git over HTTP and over SSH.
  const appForPush = (app: AppName) => {
    const { created: isNew } = state.apps.ensureForPush(app);
    if (isNew) logs.append(app, { source: 'system', text: 'app created by its first push' });
  };
  const appForFetch = (app: AppName) => void state.apps.get(app);
  const git = createGitHttpHandler({
    reposDir,
    hookSocket,
    maxPushBytes,
    authorize: (password, app, push, req) =>
      void auth.authorize(password, push ? 'deploy' : 'read', app, {
        method: req.method ?? 'GET',
        path: (req.url ?? '').split('?')[0]!,
        remote: remoteOf(req),
      }),
    appForPush,
    appForFetch,
  });
  // git over SSH (started once the API listens): same repositories, hook socket and app
  // rules as git over HTTP above.
  const sshKeys = new SshKeys(state.db);
  const hostKey = ensureHostKey(opts.dataDir);
  let sshPort = 0;
  const registry = createRegistryHandler({
    store,
    realm: 'paas',
    authorize: (req, access) => {
      const { need, app } = registryAccess(access.repo, access.push);
      auth.authorize(requestToken(req), need, app, {
        method: req.method ?? 'GET',
        path: (req.url ?? '').split('?')[0]!,
        remote: remoteOf(req),
      });
    },
  });
  // The dashboard is reached on the box's own names; an app on one of them would get every
  // admin's session cookie from the browser (cookies ignore ports).
  const reservedHosts = platformHosts(opts.domain, [hostname(), opts.apiHost ?? '']);
  // Automatic certificates (issue 18): one ACME account per data dir, orders answered by the
  // router, installed into the certificate store; the scheduler renews them.
  const acmeDirectory = opts.acmeDirectory ?? LETS_ENCRYPT_DIRECTORY;
  const renewBeforeMs = opts.acmeRenewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS;
  const autoCerts = new AutoCerts({
    dataDir: opts.dataDir,
    issuer: await AcmeAccount.open({
      dataDir: opts.dataDir,
      directoryUrl: acmeDirectory,
      caFile: opts.acmeCaFile,
    }),
    challenges: router,
    sink: certs,
    domains: (app) => {
      try {
        return state.apps.domains(parseAppName(app));
      } catch {
        return []; // the app is gone
      }
    },
    renewBeforeMs,
    checkEveryMs: opts.acmeCheckEveryMs ?? DEFAULT_CHECK_EVERY_MS,
    log: (msg, extra) => log.info({ source: 'acme', ...extra }, msg),
  });
  autoCerts.start();
  const api = createApi({
    deps,
    reposDir,
    auth,
    reservedHosts,
    log: (msg, extra) => log.info(extra ?? {}, msg),
    certs,
    ssh: { keys: sshKeys, hostKey, port: () => sshPort },
    drains,
    services,
    autoCerts: { auto: autoCerts, directory: acmeDirectory, renewBeforeMs },
  });
  // The dashboard (its routes, pages and views) loads at its first request: most daemons are
  // driven by the CLI and never serve a page (test/lazy-imports.test.ts).
  let loadingDashboard: Promise<ReturnType<typeof createDashboard>> | undefined;
  const dashboard = () =>
    (loadingDashboard ??= import('../dashboard/index.ts').then((m) =>
      m.createDashboard(dashboardOptions),
    ));
  const dashboardOptions: Parameters<typeof createDashboard>[0] = {
    deps,
    // The dashboard is the operator's: the admin token only (rotate-admin applies at once).
    checkToken: (t) => auth.isAdmin(t),
    reservedHosts,
    tokenPath: join(opts.dataDir, 'admin-token'),
    certs: {
      info: (app) => certsInfo(deps, certs, app),
      forget: (app, host) => certs.forget(app, host),
    },
    log: (msg, extra) => log.info(extra ?? {}, msg),
    scale: async (app, type, quantity) => {
      await scale(deps, app, new Map([[parseProcessType(type), quantity]]));
    },
  };

  const handlers = {
    git: {
      matches: isGitRequest,
      handle: (req, res) =>
        void git(req, res).catch((e: unknown) => {
          log.error({ err: e instanceof Error ? e.message : String(e) }, 'git request failed');
          if (!res.headersSent) res.writeHead(500).end('internal error\n');
          else res.destroy();
        }),
    },
    registry: (req, res) => void registry(req, res),
    api: (req, res) => void api(req, res),
    dashboard: (req, res) =>
      void dashboard().then(
        (d) => d(req, res),
        (e: unknown) => {
          log.error({ err: describeError(e) }, 'the dashboard did not load');
          if (!res.headersSent) res.writeHead(500).end('internal error\n');
        },
      ),
  } satisfies Parameters<typeof portHandler>[0];
  const server: PortServer =
    opts.tls === undefined
      ? createPortServer(handlers)
      : createTlsPortServer(portHandler(handlers), opts.tls, (remote) =>
          log.warn(
            { event: 'plain http refused', remote },
            'plain HTTP from a non-loopback address refused (TLS is on)',
          ),
        );
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${opts.apiHost ?? '0.0.0.0'}:${opts.apiPort}`;
      if (e.code === 'EADDRINUSE')
        reject(
          new InvalidArgument(
            `daemon: the API port ${where} is already in use (another paas daemon?); choose one with --api-port`,
            { port: opts.apiPort },
          ),
        );
      else if (e.code === 'EACCES')
        reject(
          new InvalidArgument(`daemon: not allowed to listen on ${where}`, { port: opts.apiPort }),
        );
      else reject(e);
    });
    server.listen(opts.apiPort, opts.apiHost ?? '0.0.0.0', () => resolve());
  });
  const apiPort = (server.address() as { port: number }).port;
  listening = apiPort;
  const ssh = await listenSsh(opts, {
    reposDir,
    hookSocket,
    maxPushBytes,
    hostKey: hostKey.privateKey,
    findKey: (fingerprint) => sshKeys.byFingerprint(fingerprint),
    appExists: (app) => state.apps.exists(app),
    appForPush,
    appForFetch,
    log: (msg, extra) => log.info(extra ?? {}, msg),
  });
  log.info(
    `ssh for git on ${opts.apiHost ?? '0.0.0.0'}:${ssh.port}, host key ${hostKey.fingerprint}`,
  );
  sshPort = ssh.port;
  log.info(
    `paas daemon listening on ${opts.apiHost ?? '0.0.0.0'}:${apiPort}${opts.tls ? ' (HTTPS; plain HTTP from loopback only)' : ''} (runtime ${runtime.name}, domain ${opts.domain})`,
  );

  return {
    apiPort,
    sshPort,
    async close() {
      routerWatch.stop();
      deps.supervisor.stop();
      deps.scheduler?.close();
      services.stop();
      autoCerts.stop();
      collector.stop();
      await ssh.close();
      drains.close();
      hooks.close();
      server.closeAllConnections();
      await new Promise<void>((r2) => server.close(() => r2()));
      router.close();
      state.close();
      auth.close();
    },
  };
}

/** How often the daemon checks that the front door answers (a dead one is down this long). */
const ROUTER_WATCH_MS = 2000;

/**
 * The router outlives the daemon, but nothing else restarts it: every ROUTER_WATCH_MS, a
 * plane that stopped answering (killed, crashed, OOM) is started again on its last table.
 */
function watchRouter(router: RouterLink, log: pino.Logger): { stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const tick = async (): Promise<void> => {
    try {
      const r = await router.revive();
      if (r !== null && !stopped)
        log.warn(
          `the router (${router.plane.kind}) was not answering: started it again (pid ${r.pid})`,
        );
    } catch (e) {
      if (!stopped)
        log.error(
          { err: describeError(e) },
          'the router is not answering and could not be started',
        );
    }
    if (!stopped) timer = setTimeout(() => void tick(), ROUTER_WATCH_MS).unref();
  };
  timer = setTimeout(() => void tick(), ROUTER_WATCH_MS).unref();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}

/** Starts the SSH server, turning a taken or forbidden port into a flag error. */
async function listenSsh(
  opts: DaemonOptions,
  server: Parameters<typeof startSshServer>[0],
): Promise<SshServer> {
  const host = opts.apiHost ?? '0.0.0.0';
  const port = opts.sshPort ?? DEFAULT_SSH_PORT;
  try {
    return await startSshServer(server, port, host);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new InvalidArgument(
        `daemon: the SSH port ${host}:${port} is already in use (the system's sshd, another paas daemon?); choose one with --ssh-port`,
        { port },
      );
    if (code === 'EACCES')
      throw new InvalidArgument(`daemon: not allowed to listen on ${host}:${port}`, { port });
    throw e;
  }
}

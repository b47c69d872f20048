// The JSON API under /api. Every route parses its inputs with the one validator for each kind
// (app names, config keys, domains, versions) and answers errors through the errors table.
// Only a Bearer token opens it, and every state change carries a JSON body: a browser can
// be made to send neither to another site (no form sends `application/json`, and a page
// cannot add an Authorization header cross-site without a CORS preflight we never answer).
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  parseAppName,
  parseConfigKey,
  parseConfigPairs,
  parseDomain,
  parsePort,
  parseProcessType,
  refuseReservedDomain,
  type AppName,
  type ConfigKey,
  type Release,
  type State,
} from '../apps/index.ts';
import {
  appUrl,
  changeConfig,
  destroyApp,
  exposedTcpPorts,
  publishRoutes,
  rollback,
  webPort,
  type DeployDeps,
} from '../deploy/index.ts';
import {
  InvalidArgument,
  PaasError,
  PayloadTooLarge,
  toHttp,
  UnsupportedMediaType,
} from '../errors/index.ts';
import { formatLine, SOURCES, type Filter, type Source } from '../logs/index.ts';
import type {
  AppInfo,
  AppSummary,
  BuildInfo,
  ConfigChange,
  DomainsInfo,
  PortsChange,
  PortsInfo,
  ReleaseInfo,
  RollbackResult,
} from '../api/index.ts';
import type { Auth } from './auth.ts';
import { grantOf, mountGuards } from './routes.ts';
import { mountTokenRoutes } from './tokens-api.ts';
import { appParam } from './params.ts';
import { mountImageRoutes } from './images-api.ts';
import { mountAutoCertRoutes, type AutoCertsRoutes } from './certs-auto-api.ts';
import { mountProcessRoutes } from './processes-api.ts';
import { mountCertRoutes } from './certs-api.ts';
import type { CertStore } from '../certs/index.ts';
import { mountSshKeyRoutes, type SshKeyRoutes } from './ssh-keys-api.ts';
import { mountDrainRoutes } from './drains-api.ts';
import type { DrainManager } from '../logs/index.ts';
import { mountStorageRoutes } from './storage-api.ts';
import { mountServiceRoutes } from './services-api.ts';
import type { ServiceManager } from '../services/index.ts';

export interface ApiOptions {
  deps: DeployDeps;
  reposDir: string;
  /** Tokens and scopes: every request passes Auth.authorize (routes.ts) first. */
  auth: Auth;
  /** The platform's own host names (apps' platformHosts): no app may claim one as a domain. */
  reservedHosts: readonly string[];
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** HTTPS certificates and redirects (certs-api.ts). */
  certs: CertStore;
  /** The SSH server's keys and host key (src/ssh). */
  ssh?: SshKeyRoutes;
  /** The apps' log drains (drains:add/remove); an app's go when it is destroyed. */
  drains: DrainManager;
  /** Backing services (services:*); without it those routes are absent. */
  services?: ServiceManager;
  /** `certs:auto` routes, when the daemon has a certificate store to put certificates in. */
  autoCerts?: Omit<AutoCertsRoutes, 'state'>;
}

const quiet = { write: () => undefined };

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
// `paas run` streams stdin up as its body, not JSON; no form can send this type either.
const RUN_ROUTE = /^\/api\/apps\/[^/]+\/run$/;
// services:restore streams a dump up as its body.
const RESTORE_ROUTE = /^\/api\/services\/[^/]+\/restore$/;

/** The media type of a request's body, without parameters (RFC 9110 §8.3.1), lower-cased. */
function mediaType(req: Request): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

function appInfo(state: State, deps: DeployDeps, name: AppName): AppInfo {
  const app = state.apps.get(name);
  return {
    name: app.name,
    createdAt: app.createdAt,
    release: app.liveRelease === null ? null : `v${app.liveRelease}`,
    url: appUrl(app.name, deps.domain, deps.httpPort),
    domains: state.apps.domains(name),
    formation: state.apps.formation(name),
    stopped: app.stopped,
    resources: state.apps.resources(name),
    lock: state.locks.holder(name),
  };
}

function releaseJson(r: Release): ReleaseInfo {
  return {
    version: `v${r.version}`,
    description: r.description,
    gitSha: r.gitSha,
    image: r.image,
    imageDigest: r.imageDigest,
    buildId: r.buildId,
    buildpack: r.buildpack,
    processes: r.processes,
    configKeys: Object.keys(r.config),
    createdAt: r.createdAt,
    status: r.deploy?.status ?? null,
    error: r.deploy?.error ?? null,
  };
}

export function createApi(opts: ApiOptions): express.Express {
  const { deps } = opts;
  const { state } = deps;
  const api = express();
  api.disable('x-powered-by');
  // Who may call what: routes.ts's table, checked once here before any handler.
  mountGuards(api, opts.auth);
  api.use((req, _res, next) => {
    // HTML forms can only send urlencoded, multipart or text/plain bodies (WHATWG HTML
    // §4.10.21.7), and a body-less cross-site fetch sends no type at all: requiring JSON on
    // every change refuses all of them, even if a credential ever rode along.
    if (!SAFE_METHODS.has(req.method)) {
      const want =
        RUN_ROUTE.test(req.path) || RESTORE_ROUTE.test(req.path)
          ? 'application/octet-stream'
          : 'application/json';
      if (mediaType(req) !== want)
        return next(
          new UnsupportedMediaType(`${req.method} ${req.path} takes a body of type ${want}`, {
            contentType: req.headers['content-type'] ?? null,
          }),
        );
    }
    next();
  });
  api.use(express.json({ limit: '1mb' }));
  /** The app a route names, parsed and known to exist (AppNotFound, 404, otherwise). */
  const app = (req: Request): AppName => appParam(state, req);

  api.get('/api/ping', (_req, res) => void res.json({ ok: true }));

  api.get('/api/apps', (req, res) => {
    // A token limited to apps sees only those.
    const only = grantOf(req).apps;
    res.json(
      state.apps
        .list()
        .filter((a) => only === null || only.includes(a.name))
        .map((a): AppSummary => ({
          name: a.name,
          release: a.liveRelease === null ? null : `v${a.liveRelease}`,
          createdAt: a.createdAt,
        })),
    );
  });
  api.post('/api/apps', (req, res) => {
    const name = parseAppName((req.body as { name?: unknown } | undefined)?.name);
    state.apps.create(name);
    deps.logs.append(name, { source: 'system', text: 'app created' });
    res.status(201).json(appInfo(state, deps, name));
  });
  api.get('/api/apps/:app', (req, res) => void res.json(appInfo(state, deps, app(req))));
  api.delete('/api/apps/:app', async (req, res) => {
    const name = app(req);
    if (req.query.force !== '1' && req.query.force !== 'true')
      throw new InvalidArgument(`destroying "${name}" needs force=1 (the CLI's --force)`);
    const purgeStorage = req.query['purge-storage'] === '1';
    await destroyApp(deps, name, opts.reposDir, { purgeStorage });
    await opts.certs.forget(name);
    opts.drains.forgetApp(name);
    opts.log('app destroyed', { app: name });
    res.json({ destroyed: name });
  });

  api.get('/api/apps/:app/config', (req, res) => {
    const name = app(req);
    res.json(state.apps.config(name));
  });
  api.patch('/api/apps/:app/config', async (req, res) => {
    const name = app(req);
    const body = (req.body ?? {}) as { set?: unknown; unset?: unknown };
    // Everything is validated before anything changes.
    const set = body.set === undefined ? new Map<ConfigKey, string>() : parseConfigPairs(body.set);
    if (body.unset !== undefined && !Array.isArray(body.unset))
      throw new InvalidArgument('unset must be a list of keys');
    const unset = ((body.unset ?? []) as unknown[]).map(parseConfigKey);
    if (set.size === 0 && unset.length === 0) throw new InvalidArgument('nothing to change');
    const result = await changeConfig(deps, name, set, unset, quiet);
    res.json({
      config: state.apps.config(name),
      release: result === null ? null : releaseJson(result.release),
    } satisfies ConfigChange);
  });

  api.get('/api/apps/:app/releases', (req, res) => {
    const name = app(req);
    res.json(state.releases.list(name).map(releaseJson));
  });
  api.post('/api/apps/:app/rollback', async (req, res) => {
    const name = app(req);
    const target = (req.body as { release?: unknown } | undefined)?.release;
    const r = await rollback(deps, name, typeof target === 'string' ? target : undefined, quiet);
    res.json({ release: releaseJson(r.release), url: r.url } satisfies RollbackResult);
  });
  api.get('/api/apps/:app/builds', (req, res) => {
    const name = app(req);
    res.json(state.builds.list(name) satisfies BuildInfo[]);
  });
  mountProcessRoutes(api, deps);
  mountImageRoutes(api, deps);
  mountTokenRoutes(api, opts.auth, opts.log);
  // Before the certs routes: `DELETE …/certs/auto` would otherwise match `…/certs/:host`.
  if (opts.autoCerts !== undefined) mountAutoCertRoutes(api, { state, ...opts.autoCerts });
  mountCertRoutes(api, deps, opts.certs);
  if (opts.ssh !== undefined) mountSshKeyRoutes(api, opts.ssh, opts.log);
  mountDrainRoutes(api, deps, opts.drains);
  mountStorageRoutes(api, deps);
  if (opts.services !== undefined) mountServiceRoutes(api, deps, opts.services);

  api.get('/api/apps/:app/domains', (req, res) => {
    const name = app(req);
    res.json({
      default: `${name}.${deps.domain}`,
      custom: state.apps.domains(name),
    } satisfies DomainsInfo);
  });
  api.post('/api/apps/:app/domains', async (req, res) => {
    const name = app(req);
    const domain = parseDomain((req.body as { domain?: unknown } | undefined)?.domain);
    refuseReservedDomain(domain, opts.reservedHosts);
    state.apps.addDomain(name, domain);
    await publishRoutes(deps);
    // With certs:auto on, the new domain's certificate is ordered now (in the background).
    opts.autoCerts?.auto.refresh(name);
    res.status(201).json({ custom: state.apps.domains(name) });
  });
  api.delete('/api/apps/:app/domains/:domain', async (req, res) => {
    const name = app(req);
    const domain = parseDomain(req.params.domain);
    state.apps.removeDomain(name, domain);
    // A name that left the app must not keep serving the app's certificate.
    await opts.certs.forget(name, domain);
    await publishRoutes(deps);
    res.json({ custom: state.apps.domains(name) });
  });

  // The web port (issue 16): PORT config (ports:set) > the image's one EXPOSEd TCP port > 5000.
  // ports:set and ports:clear are the PORT config var, so they make a release like config:set.
  api.get('/api/apps/:app/ports', async (req, res) => {
    const name = app(req);
    const live = state.apps.get(name).liveRelease;
    if (live === null) {
      const port = state.apps.config(name).PORT;
      res.json({
        release: null,
        port: port ?? null,
        why: 'nothing is deployed yet',
        exposed: [],
      } satisfies PortsInfo);
      return;
    }
    const release = state.releases.get(name, live);
    const image = await deps.store.resolveImage(release.image);
    const { port, why } = webPort(release, image.config);
    res.json({
      release: `v${live}`,
      port,
      why,
      exposed: exposedTcpPorts(image.config),
    } satisfies PortsInfo);
  });
  api.put('/api/apps/:app/ports', async (req, res) => {
    const name = app(req);
    const port = parsePort((req.body as { port?: unknown } | undefined)?.port);
    const key = parseConfigKey('PORT');
    const r = await changeConfig(deps, name, new Map([[key, String(port)]]), [], quiet);
    res.json({ port, release: r === null ? null : releaseJson(r.release) } satisfies PortsChange);
  });
  api.delete('/api/apps/:app/ports', async (req, res) => {
    const name = app(req);
    if (state.apps.config(name).PORT === undefined) {
      res.json({ port: null, release: null } satisfies PortsChange);
      return;
    }
    const r = await changeConfig(deps, name, new Map(), [parseConfigKey('PORT')], quiet);
    res.json({
      port: null,
      release: r === null ? null : releaseJson(r.release),
    } satisfies PortsChange);
  });

  api.get('/api/apps/:app/logs', (req, res) => {
    const name = app(req);
    const n = req.query.n === undefined ? 100 : Number(req.query.n);
    if (!Number.isInteger(n) || n < 0 || n > 100_000)
      throw new InvalidArgument('n must be a whole number up to 100000');
    const filter: Filter = {};
    if (typeof req.query.source === 'string') {
      if (!(SOURCES as readonly string[]).includes(req.query.source))
        throw new InvalidArgument(`source must be one of ${SOURCES.join(', ')}`);
      filter.source = req.query.source as Source;
    }
    if (typeof req.query.ps === 'string') {
      // `web` or `web.2`: the type by the process-type rule, the slot a small number.
      const [type, n, ...rest] = req.query.ps.split('.');
      parseProcessType(type);
      if (rest.length > 0 || (n !== undefined && !/^[0-9]{1,4}$/.test(n)))
        throw new InvalidArgument('ps must be a process type or type.n');
      filter.ps = req.query.ps;
    }
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    for (const l of deps.logs.tail(name, n, filter)) res.write(`${formatLine(l)}\n`);
    if (req.query.follow !== '1') return void res.end();
    // Follow until the client goes away; a heartbeat-free stream, flushed per line.
    res.flushHeaders();
    const off = deps.logs.follow(name, filter, (l) => res.write(`${formatLine(l)}\n`));
    req.on('close', off);
    res.on('close', off);
  });

  api.use((_req, _res, next) => next(new PaasError('NotFound', 'notFound', 'no such API route')));
  api.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: string }).type;
    const body =
      type === 'entity.parse.failed'
        ? new InvalidArgument('request body is not valid JSON')
        : type === 'entity.too.large'
          ? new PayloadTooLarge('request body is larger than 1 MB')
          : err;
    const { status, body: json } = toHttp(body);
    if (status >= 500)
      opts.log('internal error', { err: err instanceof Error ? err.stack : String(err) });
    // A body cut off mid-stream (the port's body timeout answered already): nothing to add.
    if (res.headersSent) return void res.destroy();
    res.status(status).json(json);
  });
  return api;
}

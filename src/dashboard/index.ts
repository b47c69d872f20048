// The web dashboard, served by the daemon on the API port beside /api, /v2 and git: token
// login for a cookie session, then the apps list and one page per app. Every change is a
// form POST with the session's CSRF token that calls the same pipeline functions as the API;
// the live log tail is Server-Sent Events. No client framework: HTML from handlebars, one
// stylesheet, and a few lines of script for the tail.
import { readFileSync } from 'node:fs';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  parseAppName,
  parseConfigKey,
  parseConfigValue,
  parseDomain,
  parseFormationEntry,
  refuseReservedDomain,
  type AppName,
} from '../apps/index.ts';
import {
  changeConfig,
  publishRoutes,
  restartApp,
  rollback,
  startApp,
  stopApp,
  type DeployDeps,
} from '../deploy/index.ts';
import { InvalidArgument, PaasError, toHttp } from '../errors/index.ts';
import { formatLine } from '../logs/index.ts';
import type { CertsInfo } from '../api/index.ts';
import { appPage, appsPage, buildLog } from './pages.ts';
import {
  LOGIN_COOKIE,
  readCookie,
  SESSION_COOKIE,
  SESSION_MAX_AGE_S,
  sameToken,
  sessionCookie,
  Sessions,
  randomToken,
  type Session,
} from './session.ts';
import { render, type LayoutData } from './views.ts';

export interface DashboardOptions {
  deps: DeployDeps;
  checkToken: (t: string | null) => boolean;
  /** The platform's own host names (apps' platformHosts): no app may claim one as a domain. */
  reservedHosts: readonly string[];
  /** Where the admin token lives, shown on the login page. */
  tokenPath: string;
  /** Sets an app's process count for a type and converges on it (the processes issue's scale). */
  scale: (app: AppName, type: string, quantity: number) => Promise<void>;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** Each host's certificate (the daemon's certs-api), and forgetting one whose domain left. */
  certs?: {
    info(app: AppName): CertsInfo;
    forget(app: AppName, host: string): Promise<void>;
  };
}

const quiet = { write: () => undefined };

/** The app page's HTTPS rows: each host, what certificate serves it, until when, auto state. */
function httpsRows(opts: DashboardOptions, name: AppName) {
  const info = opts.certs?.info(name);
  if (info === undefined) return null;
  return {
    redirect: info.redirectHttps ? (info.hsts ? 'on, with HSTS' : 'on') : 'off',
    hosts: info.hosts.map((h) => ({
      host: h.host,
      cert: h.servedBy === 'none' ? 'none' : h.servedBy === 'default' ? 'default' : h.cert!.source,
      expires: h.cert?.notAfter.slice(0, 10) ?? null,
      expired: h.cert !== null && Date.parse(h.cert.notAfter) < Date.now(),
      issuer: h.cert?.issuer ?? null,
      auto: h.auto ?? 'off',
      lastError: h.lastError,
    })),
  };
}
const STATIC: Record<string, { type: string; body: Buffer }> = {
  'style.css': {
    type: 'text/css; charset=utf-8',
    body: readFileSync(new URL('./static/style.css', import.meta.url)),
  },
  'tail.js': {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(new URL('./static/tail.js', import.meta.url)),
  },
};

// Only our own stylesheet and script, no inline code, no framing (clickjacking), forms post
// only here. With escaping this is the second wall against injected markup.
const CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type Authed = Request & { session: Session };

/** ps:restart / ps:stop / ps:start, as buttons: a stopped app offers only start. */
function psActions(deps: DeployDeps, name: AppName): string[] {
  return deps.state.apps.get(name).stopped ? ['start'] : ['restart', 'stop'];
}

export function createDashboard(opts: DashboardOptions): express.Express {
  const { deps } = opts;
  const sessions = new Sessions();
  const dash = express();
  dash.disable('x-powered-by');
  dash.set('etag', false);
  dash.use((_req, res, next) => {
    res.set({
      'content-security-policy': CSP,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` even
      // on our own form posts (Fetch §3.2.5), and the origin check below needs the real one.
      // Other sites (the apps linked from here) still get no referrer.
      'referrer-policy': 'same-origin',
      'cache-control': 'no-store',
    });
    next();
  });

  dash.get('/static/:file', (req, res) => {
    const f = STATIC[req.params.file];
    if (f === undefined) return void res.status(404).type('text/plain').send('not found\n');
    res.set('cache-control', 'public, max-age=300').type(f.type).send(f.body);
  });

  // A browser names the origin of every POST it sends (Fetch §3.1, RFC 6454 §7). One from
  // another origin is refused before its form is read: SameSite=Strict does not stop a page
  // of the same site (an app on a sibling name, any port of this host), and the CSRF token
  // below is then the second wall, not the only one. Clients that send no Origin (curl, old
  // browsers) still need the token.
  dash.use((req, _res, next) => {
    if (req.method !== 'POST' || req.headers.origin === undefined) return next();
    let host: string | null = null;
    try {
      host = new URL(req.headers.origin).host;
    } catch {
      // `null` (a sandboxed frame, a redirect chain) or garbage: no origin to trust.
    }
    // A TLS proxy in front may rewrite Host; the name the browser used is then in
    // X-Forwarded-Host, which a page cannot set on a cross-site form.
    const forwarded = req.headers['x-forwarded-host'];
    if (host === null || host === '' || (host !== req.headers.host && host !== forwarded))
      return next(
        new PaasError(
          'Forbidden',
          'forbidden',
          `a form from ${JSON.stringify(req.headers.origin.slice(0, 100))} may not change anything here; use the dashboard itself`,
        ),
      );
    next();
  });

  // Browsers ask for it on every page; answering here keeps it from bouncing to the login page.
  dash.get('/favicon.ico', (_req, res) => void res.status(204).end());

  const form = express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 50 });
  const page = (
    res: Response,
    status: number,
    view: string,
    layout: LayoutData,
    data: Record<string, unknown> = {},
  ) =>
    void res
      .status(status)
      .type('html')
      .send(render(view, layout, data));

  dash.get('/login', (req, res) => {
    if (sessions.get(readCookie(req, SESSION_COOKIE)) !== null) return void res.redirect(303, '/');
    loginPage(req, res, 200, null);
  });
  function loginPage(req: Request, res: Response, status: number, error: string | null) {
    // Reuse the browser's login token if it has one: a second login page open (or a favicon
    // fetch bounced here) must not invalidate the form already on screen.
    const had = readCookie(req, LOGIN_COOKIE);
    const loginCsrf = had !== null && /^[A-Za-z0-9_-]{43}$/.test(had) ? had : randomToken();
    res.append(
      'set-cookie',
      sessionCookie(LOGIN_COOKIE, loginCsrf, { maxAgeS: 3600, path: '/login' }),
    );
    page(
      res,
      status,
      'login',
      { title: 'Log in', flash: error === null ? null : { kind: 'error', text: error } },
      { loginCsrf, tokenPath: opts.tokenPath },
    );
  }
  dash.post('/login', form, (req, res) => {
    const body = req.body as Record<string, unknown>;
    // The login form is a double submit: a cross-site page can post a form but cannot read
    // or set our cookie, so it cannot log a browser into a session it chose (login CSRF).
    const cookie = readCookie(req, LOGIN_COOKIE);
    if (cookie === null || !sameToken(typeof body.csrf === 'string' ? body.csrf : null, cookie)) {
      return void page(
        res,
        403,
        'error',
        { title: 'Forbidden' },
        {
          heading: 'Forbidden',
          message:
            'The login form expired or came from another site. Reload the login page and try again.',
        },
      );
    }
    const token = typeof body.token === 'string' ? body.token.trim() : null;
    if (!opts.checkToken(token)) {
      opts.log('dashboard login failed');
      return loginPage(req, res, 401, 'That is not the admin token.');
    }
    const s = sessions.create();
    res.append('set-cookie', sessionCookie(SESSION_COOKIE, s.id, { maxAgeS: SESSION_MAX_AGE_S }));
    res.append('set-cookie', sessionCookie(LOGIN_COOKIE, '', { maxAgeS: 0, path: '/login' }));
    opts.log('dashboard login');
    res.redirect(303, '/');
  });

  // Everything below needs a session; a browser without one is sent to the login page.
  dash.use((req, res, next) => {
    const s = sessions.get(readCookie(req, SESSION_COOKIE));
    if (s === null) return void res.redirect(303, '/login');
    (req as Authed).session = s;
    next();
  });
  // Every state change is a form POST carrying the session's CSRF token.
  dash.post('/{*any}', form, (req, _res, next) => {
    const sent = (req.body as Record<string, unknown> | undefined)?.csrf;
    if (!sameToken(typeof sent === 'string' ? sent : null, (req as Authed).session.csrf))
      return next(
        new PaasError(
          'Forbidden',
          'forbidden',
          'the form is missing its CSRF token or it does not match this session; reload the page',
        ),
      );
    next();
  });

  const layout = (req: Request, title: string): LayoutData => {
    const s = (req as Authed).session;
    const flash = flashes.get(s.id) ?? null;
    flashes.delete(s.id);
    return { title, csrf: s.csrf, flash };
  };
  // One message for the page after a redirect (post/redirect/get), per session.
  const flashes = new Map<string, { kind: 'ok' | 'error'; text: string }>();
  const appName = (req: Request): AppName => parseAppName(req.params.app);
  const field = (req: Request, name: string): string => {
    const v = (req.body as Record<string, unknown>)[name];
    if (typeof v !== 'string') throw new InvalidArgument(`the form has no ${name}`);
    return v;
  };
  /** Runs a change, then redirects to the app page with its outcome as the flash message. */
  const action =
    (fn: (req: Request, name: AppName) => Promise<string>) =>
    async (req: Request, res: Response) => {
      const name = appName(req);
      deps.state.apps.get(name);
      const sid = (req as Authed).session.id;
      try {
        flashes.set(sid, { kind: 'ok', text: await fn(req, name) });
      } catch (e) {
        if (!(e instanceof PaasError)) throw e;
        flashes.set(sid, { kind: 'error', text: e.message });
      }
      res.redirect(303, `/apps/${name}`);
    };

  dash.post('/logout', (req, res) => {
    sessions.destroy((req as Authed).session.id);
    res.append('set-cookie', sessionCookie(SESSION_COOKIE, '', { maxAgeS: 0 }));
    res.redirect(303, '/login');
  });

  dash.get('/', async (req, res) =>
    page(res, 200, 'apps', layout(req, 'Apps'), await appsPage(deps)),
  );
  dash.get('/apps/:app', async (req, res) => {
    const name = appName(req);
    page(res, 200, 'app', layout(req, name), {
      ...(await appPage(deps, name)),
      psActions: psActions(deps, name),
      https: httpsRows(opts, name),
    });
  });
  dash.get('/apps/:app/builds/:id', (req, res) => {
    const name = appName(req);
    deps.state.apps.get(name);
    const b = /^[0-9]{1,12}$/.test(req.params.id ?? '')
      ? deps.state.builds.get(Number(req.params.id))
      : null;
    if (b === null || b.app !== name)
      throw new PaasError(
        'NotFound',
        'notFound',
        `app "${name}" has no build #${String(req.params.id).slice(0, 12)}`,
      );
    page(res, 200, 'build', layout(req, `${name} build #${b.id}`), {
      app: name,
      build: b,
      lines: buildLog(deps, b),
    });
  });

  dash.post('/apps/:app/config/reveal', async (req, res) => {
    const name = appName(req);
    const key = parseConfigKey(field(req, 'key'));
    page(res, 200, 'app', layout(req, name), {
      ...(await appPage(deps, name, { reveal: key })),
      psActions: psActions(deps, name),
      https: httpsRows(opts, name),
    });
  });
  dash.post(
    '/apps/:app/config',
    action(async (req, name) => {
      const key = parseConfigKey(field(req, 'key'));
      const r = await changeConfig(
        deps,
        name,
        new Map([[key, parseConfigValue(key, field(req, 'value'))]]),
        [],
        quiet,
      );
      return r === null
        ? `${key} set; it takes effect with the first deploy`
        : `${key} set: released v${r.release.version}`;
    }),
  );
  dash.post(
    '/apps/:app/config/unset',
    action(async (req, name) => {
      const key = parseConfigKey(field(req, 'key'));
      const r = await changeConfig(deps, name, new Map(), [key], quiet);
      return r === null ? `${key} unset` : `${key} unset: released v${r.release.version}`;
    }),
  );
  dash.post(
    '/apps/:app/rollback',
    action(async (req, name) => {
      const r = await rollback(deps, name, field(req, 'release'), quiet);
      return `${r.release.description}: released v${r.release.version}`;
    }),
  );
  dash.post(
    '/apps/:app/scale',
    action(async (req, name) => {
      // A form field is text: digits only, then the formation rule every scale goes through.
      const raw = field(req, 'quantity');
      const [type, quantity] = parseFormationEntry(
        field(req, 'type'),
        /^[0-9]{1,4}$/.test(raw) ? Number(raw) : raw,
      );
      await opts.scale(name, type, quantity);
      return `scaled ${type} to ${quantity}`;
    }),
  );
  dash.post(
    '/apps/:app/ps/:verb',
    action(async (req, name) => {
      switch (req.params.verb) {
        case 'restart':
          await restartApp(deps, name);
          return 'restarted every process';
        case 'stop':
          await stopApp(deps, name);
          return 'stopped: no process runs until start';
        case 'start':
          await startApp(deps, name);
          return 'started';
        default:
          throw new InvalidArgument('the action must be restart, stop or start');
      }
    }),
  );
  dash.post(
    '/apps/:app/domains',
    action(async (req, name) => {
      const domain = parseDomain(field(req, 'domain'));
      refuseReservedDomain(domain, opts.reservedHosts);
      deps.state.apps.addDomain(name, domain);
      await publishRoutes(deps);
      return `${domain} added`;
    }),
  );
  dash.post(
    '/apps/:app/domains/remove',
    action(async (req, name) => {
      const domain = parseDomain(field(req, 'domain'));
      deps.state.apps.removeDomain(name, domain);
      await opts.certs?.forget(name, domain);
      await publishRoutes(deps);
      return `${domain} removed`;
    }),
  );

  // The live tail: one SSE event per new log line (text/event-stream, WHATWG HTML §9.2).
  // Lines are single-line by construction (the log store escapes control characters).
  dash.get('/apps/:app/logs/stream', (req, res) => {
    const name = appName(req);
    deps.state.apps.get(name);
    res.status(200).set({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 3000\n\n');
    const off = deps.logs.follow(name, {}, (l) => res.write(`data: ${formatLine(l)}\n\n`));
    // A comment line now and then keeps proxies and idle timers from closing the stream.
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const stop = () => {
      off();
      clearInterval(beat);
    };
    req.on('close', stop);
    res.on('close', stop);
  });

  dash.use((req, res) =>
    page(res, 404, 'error', layout(req, 'Not found'), {
      heading: 'Not found',
      message: 'There is no page here.',
    }),
  );
  dash.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: string }).type;
    const e =
      type === 'entity.too.large'
        ? new InvalidArgument('the form is too large')
        : type === 'parameters.too.many'
          ? new InvalidArgument('the form has too many fields')
          : err;
    const { status } = toHttp(e);
    if (status >= 500)
      opts.log('dashboard internal error', { err: err instanceof Error ? err.stack : String(err) });
    const message =
      e instanceof PaasError
        ? e.message
        : 'Something went wrong inside paas; the daemon log has the details.';
    const lay: LayoutData =
      (req as Partial<Authed>).session !== undefined ? layout(req, 'Error') : { title: 'Error' };
    page(res, status, 'error', lay, {
      heading: status === 403 ? 'Forbidden' : status === 404 ? 'Not found' : 'Error',
      message,
    });
  });
  return dash;
}

// The API's route table of access: the scope each endpoint needs (issue 19). Express matches
// these paths exactly as it matches the handlers, and the one check (Auth.authorize) runs
// before any handler. A route missing from this table needs admin: a new endpoint is closed
// until someone decides who may call it.
//
//   read    status, releases, builds, processes, domains, ports, logs of its apps
//   deploy  read, plus what a deploy pipeline does: roll back, restart/stop/start
//           (git push and registry push are deploy too, checked in daemon/index.ts)
//   admin   everything: config (its values are secrets), scale, resources, run, domains,
//           ports, app create/destroy, images, registry logins, tokens, SSH keys
import type { Express, NextFunction, Request, Response } from 'express';
import { bearerToken, remoteOf, type Auth, type Grant, type Scope } from './auth.ts';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteRule {
  method: Method;
  path: string;
  scope: Scope;
}

export const ROUTES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/ping', scope: 'read' },
  { method: 'GET', path: '/api/whoami', scope: 'read' },
  // The list is filtered to the token's apps by its handler.
  { method: 'GET', path: '/api/apps', scope: 'read' },
  { method: 'POST', path: '/api/apps', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app', scope: 'read' },
  { method: 'DELETE', path: '/api/apps/:app', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app/config', scope: 'admin' },
  { method: 'PATCH', path: '/api/apps/:app/config', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app/releases', scope: 'read' },
  { method: 'POST', path: '/api/apps/:app/rollback', scope: 'deploy' },
  { method: 'GET', path: '/api/apps/:app/builds', scope: 'read' },
  { method: 'GET', path: '/api/apps/:app/ps', scope: 'read' },
  { method: 'GET', path: '/api/apps/:app/formation', scope: 'read' },
  { method: 'PATCH', path: '/api/apps/:app/formation', scope: 'admin' },
  { method: 'POST', path: '/api/apps/:app/ps/:action', scope: 'deploy' },
  { method: 'GET', path: '/api/apps/:app/resources', scope: 'read' },
  { method: 'PATCH', path: '/api/apps/:app/resources', scope: 'admin' },
  { method: 'POST', path: '/api/apps/:app/run', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app/domains', scope: 'read' },
  { method: 'POST', path: '/api/apps/:app/domains', scope: 'admin' },
  { method: 'DELETE', path: '/api/apps/:app/domains/:domain', scope: 'admin' },
  // HTTPS (issue 18): what serves each host is read; certificates and redirects are admin.
  { method: 'GET', path: '/api/apps/:app/certs', scope: 'read' },
  { method: 'POST', path: '/api/apps/:app/certs', scope: 'admin' },
  { method: 'DELETE', path: '/api/apps/:app/certs/:host', scope: 'admin' },
  { method: 'POST', path: '/api/certs/default', scope: 'admin' },
  { method: 'PUT', path: '/api/apps/:app/redirect-https', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app/ports', scope: 'read' },
  { method: 'PUT', path: '/api/apps/:app/ports', scope: 'admin' },
  { method: 'DELETE', path: '/api/apps/:app/ports', scope: 'admin' },
  { method: 'GET', path: '/api/apps/:app/logs', scope: 'read' },
  // drains:* (issue 21) are admin, like config: a drain's destination is configuration,
  // and its URL may carry a credential (shown redacted, but still not for read tokens).
  { method: 'GET', path: '/api/apps/:app/drains', scope: 'admin' },
  { method: 'POST', path: '/api/apps/:app/drains', scope: 'admin' },
  { method: 'DELETE', path: '/api/apps/:app/drains', scope: 'admin' },
  // storage:* (issue 21): what is mounted is status; changing it binds host data.
  { method: 'GET', path: '/api/apps/:app/storage', scope: 'read' },
  { method: 'POST', path: '/api/apps/:app/storage', scope: 'admin' },
  { method: 'POST', path: '/api/apps/:app/storage/unmount', scope: 'admin' },
  // services:* are admin: a service's URL carries its password, a link sets config.
  { method: 'GET', path: '/api/services', scope: 'admin' },
  { method: 'POST', path: '/api/services', scope: 'admin' },
  { method: 'GET', path: '/api/services/:name', scope: 'admin' },
  { method: 'DELETE', path: '/api/services/:name', scope: 'admin' },
  { method: 'POST', path: '/api/services/:name/restart', scope: 'admin' },
  { method: 'POST', path: '/api/services/:name/link', scope: 'admin' },
  { method: 'POST', path: '/api/services/:name/unlink', scope: 'admin' },
  { method: 'POST', path: '/api/services/:name/restore', scope: 'admin' },
  { method: 'GET', path: '/api/services/:name/backup', scope: 'admin' },
  // certs:auto (issue 18): ordering certificates is the operator's, like domains.
  { method: 'GET', path: '/api/apps/:app/certs/auto', scope: 'read' },
  { method: 'POST', path: '/api/apps/:app/certs/auto', scope: 'admin' },
  { method: 'DELETE', path: '/api/apps/:app/certs/auto', scope: 'admin' },
  { method: 'POST', path: '/api/images/pull', scope: 'admin' },
  { method: 'POST', path: '/api/images/gc', scope: 'admin' },
  { method: 'POST', path: '/api/registry/login', scope: 'admin' },
  { method: 'POST', path: '/api/registry/logout', scope: 'admin' },
  { method: 'GET', path: '/api/tokens', scope: 'admin' },
  { method: 'POST', path: '/api/tokens', scope: 'admin' },
  { method: 'DELETE', path: '/api/tokens/:id', scope: 'admin' },
  { method: 'POST', path: '/api/tokens/rotate-admin', scope: 'admin' },
  // SSH keys open git for every app they allow: only admin adds, lists or removes them.
  // The host key is public (it is what known_hosts holds).
  { method: 'GET', path: '/api/ssh-keys', scope: 'admin' },
  { method: 'POST', path: '/api/ssh-keys', scope: 'admin' },
  { method: 'DELETE', path: '/api/ssh-keys/:name', scope: 'admin' },
  { method: 'GET', path: '/api/ssh-keys/host', scope: 'read' },
];

const needs = new WeakMap<Request, { scope: Scope; app: string | null }>();
const grants = new WeakMap<Request, Grant>();

/** The grant the guard gave a request (handlers that filter by app, whoami). */
export function grantOf(req: Request): Grant {
  const g = grants.get(req);
  // Unreachable past mountGuards: every request either has a grant or was refused.
  if (g === undefined) throw new Error('grantOf: request was not authorized');
  return g;
}

/** Mounts the table's needs and the one check in front of every handler mounted after it. */
export function mountGuards(api: Express, auth: Auth, rules: readonly RouteRule[] = ROUTES): void {
  for (const r of rules) {
    const route = api.route(r.path);
    const mark = (req: Request, _res: Response, next: NextFunction): void => {
      // The first rule that matches decides (a path can match at most one in this table).
      if (!needs.has(req)) {
        const app = typeof req.params.app === 'string' ? req.params.app : null;
        needs.set(req, { scope: r.scope, app });
      }
      next();
    };
    switch (r.method) {
      case 'GET':
        route.get(mark);
        break;
      case 'POST':
        route.post(mark);
        break;
      case 'PUT':
        route.put(mark);
        break;
      case 'PATCH':
        route.patch(mark);
        break;
      case 'DELETE':
        route.delete(mark);
        break;
    }
  }
  api.use((req: Request, _res: Response, next: NextFunction) => {
    const need = needs.get(req) ?? { scope: 'admin' as const, app: null };
    const where = { method: req.method, path: req.path, remote: remoteOf(req) };
    grants.set(req, auth.authorize(bearerToken(req), need.scope, need.app, where));
    next();
  });
}

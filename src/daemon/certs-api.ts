// HTTPS routes of the API (issue 18): an app's certificates, the operator's default, and the
// HTTP → HTTPS redirect. Certificates arrive as PEM text in the JSON body (the CLI reads the
// files); the store validates them and pushes the new set to the router.
import type express from 'express';
import type { Request } from 'express';
import { parseDomain, type AppName } from '../apps/index.ts';
import { namesCover, type CertPem, type CertStore } from '../certs/index.ts';
import { publishRoutes, type DeployDeps } from '../deploy/index.ts';
import { InvalidArgument } from '../errors/index.ts';
import type { CertAdded, CertsInfo, RedirectHttpsInfo } from '../api/index.ts';
import { appParam } from './params.ts';

/** PEM text of the body's `cert` and `key`: the one border check before the store's validator. */
function pemBody(req: Request): CertPem {
  const { cert, key } = (req.body ?? {}) as { cert?: unknown; key?: unknown };
  if (typeof cert !== 'string' || cert.length === 0)
    throw new InvalidArgument(
      'cert (PEM text: the certificate, then its intermediates) is required',
    );
  if (typeof key !== 'string' || key.length === 0)
    throw new InvalidArgument('key (PEM text of the private key) is required');
  return { cert, key };
}

/** The names an app answers on: its custom domains and `<app>.<domain>`. */
export function appHosts(deps: DeployDeps, app: AppName): string[] {
  return [...deps.state.apps.domains(app), `${app}.${deps.domain}`];
}

export function certsInfo(deps: DeployDeps, certs: CertStore, app: AppName): CertsInfo {
  const entries = new Map(certs.list(app).map((e) => [e.host, e]));
  const hosts = [...new Set([...appHosts(deps, app), ...entries.keys()])];
  const def = certs.defaultCert;
  return {
    app,
    ...certs.https(app),
    hosts: hosts.map((host) => {
      const e = entries.get(host);
      const own = e?.cert ?? null;
      const byDefault = own === null && def !== null && namesCover(def.names, host);
      return {
        host,
        servedBy: own !== null ? 'own' : byDefault ? 'default' : 'none',
        cert: own ?? (byDefault ? def : null),
        auto: e?.auto ?? null,
        lastError: e?.lastError ?? null,
      };
    }),
  };
}

export function mountCertRoutes(api: express.Express, deps: DeployDeps, certs: CertStore): void {
  const app = (req: Request): AppName => appParam(deps.state, req);

  api.get('/api/apps/:app/certs', (req, res) => void res.json(certsInfo(deps, certs, app(req))));

  api.post('/api/apps/:app/certs', async (req, res) => {
    const name = app(req);
    const r = await certs.addForApp(name, appHosts(deps, name), pemBody(req));
    res.status(201).json(r satisfies CertAdded);
  });

  api.delete('/api/apps/:app/certs/:host', async (req, res) => {
    const name = app(req);
    await certs.remove(name, parseDomain(req.params.host));
    res.json(certsInfo(deps, certs, name));
  });

  api.post('/api/certs/default', async (req, res) => {
    const cert = await certs.setDefault(pemBody(req));
    res.status(201).json({ hosts: cert.names, cert } satisfies CertAdded);
  });

  api.put('/api/apps/:app/redirect-https', async (req, res) => {
    const name = app(req);
    const { on, hsts } = (req.body ?? {}) as { on?: unknown; hsts?: unknown };
    if (typeof on !== 'boolean') throw new InvalidArgument('on must be true or false');
    if (hsts !== undefined && typeof hsts !== 'boolean')
      throw new InvalidArgument('hsts must be true or false');
    // HSTS without the redirect would pin browsers to HTTPS the operator just turned off.
    const value = { redirectHttps: on, hsts: on && hsts === true };
    certs.setHttps(name, value);
    await publishRoutes(deps);
    res.json(value satisfies RedirectHttpsInfo);
  });
}

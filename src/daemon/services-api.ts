// services:* (issue 21). Linking is a config change (`<alias>_URL`) and so a new release the
// app redeploys with; the release's processes also get the service's socket mount (deploy's
// processes.ts), which is what lets them reach it at all.
import express, { type Express, type Request } from 'express';
import type { ServiceInfo, ServiceLinkChange } from '../api/index.ts';
import { parseAppName, parseConfigKey } from '../apps/index.ts';
import { changeConfig, type DeployDeps } from '../deploy/index.ts';
import { InvalidArgument, PayloadTooLarge } from '../errors/index.ts';
import { parseImageRef } from '../registry/index.ts';
import {
  backup,
  KINDS,
  parseAlias,
  parseServiceName,
  parseServiceType,
  restore,
  type ServiceManager,
  type ServiceName,
} from '../services/index.ts';

const quiet = { write: () => undefined };
/** The largest dump services:restore takes in one request. */
const MAX_RESTORE_BYTES = 1024 * 1024 * 1024;

export function mountServiceRoutes(api: Express, deps: DeployDeps, m: ServiceManager): void {
  const name = (req: Request): ServiceName => {
    const n = parseServiceName(req.params.name);
    m.services.get(n);
    return n;
  };
  const info = async (n: ServiceName, reveal: boolean): Promise<ServiceInfo> => {
    const s = await m.status(n);
    const { value } = m.linkVar(s.service, KINDS[s.service.type].alias);
    return {
      name: s.service.name,
      type: s.service.type,
      image: s.service.image,
      state: s.container?.state ?? 'missing',
      container: s.container?.id ?? null,
      restarts: s.restarts,
      url: reveal ? value : value.replaceAll(s.service.password, '********'),
      links: s.links.map((l) => ({ app: l.app, alias: l.alias, var: `${l.alias}_URL` })),
      createdAt: s.service.createdAt,
    };
  };

  api.get('/api/services', async (req, res) => {
    const out: ServiceInfo[] = [];
    for (const s of m.services.list()) out.push(await info(s.name, false));
    res.json(out);
  });
  api.post('/api/services', async (req, res) => {
    const body = (req.body ?? {}) as { type?: unknown; name?: unknown; image?: unknown };
    const type = parseServiceType(body.type);
    const n = parseServiceName(body.name);
    const image = body.image === undefined ? undefined : parseImageRef(body.image);
    const lines: string[] = [];
    await m.create(type, n, (l) => lines.push(l), image);
    res.status(201).json({ ...(await info(n, false)), lines });
  });
  api.get('/api/services/:name', async (req, res) => {
    res.json(await info(name(req), req.query.reveal === '1'));
  });
  api.delete('/api/services/:name', async (req, res) => {
    const n = name(req);
    if (req.query.force !== '1')
      throw new InvalidArgument(`destroying service "${n}" and its data needs --force`);
    await m.destroy(n);
    res.json({ destroyed: n });
  });
  api.post('/api/services/:name/restart', async (req, res) => {
    const n = name(req);
    await m.restart(n);
    res.json(await info(n, false));
  });

  api.post('/api/services/:name/link', async (req, res) => {
    const n = name(req);
    const body = (req.body ?? {}) as { app?: unknown; alias?: unknown };
    const app = parseAppName(body.app);
    deps.state.apps.get(app);
    const svc = m.services.get(n);
    const alias = parseAlias(body.alias ?? KINDS[svc.type].alias);
    const v = m.linkVar(svc, alias);
    m.services.link(n, app, alias);
    try {
      const r = await changeConfig(
        deps,
        app,
        new Map([[parseConfigKey(v.key), v.value]]),
        [],
        quiet,
      );
      deps.logs.append(app, { source: 'system', text: `service ${n} linked as ${v.key}` });
      res.json({
        service: n,
        app,
        var: v.key,
        release: r === null ? null : `v${r.release.version}`,
      } satisfies ServiceLinkChange);
    } catch (e) {
      m.services.unlink(n, app);
      throw e;
    }
  });
  api.post('/api/services/:name/unlink', async (req, res) => {
    const n = name(req);
    const app = parseAppName((req.body as { app?: unknown } | undefined)?.app);
    deps.state.apps.get(app);
    const l = m.services.unlink(n, app);
    const key = parseConfigKey(`${l.alias}_URL`);
    const r = await changeConfig(deps, app, new Map(), [key], quiet);
    deps.logs.append(app, { source: 'system', text: `service ${n} unlinked (${key} unset)` });
    res.json({
      service: n,
      app,
      var: key,
      release: r === null ? null : `v${r.release.version}`,
    } satisfies ServiceLinkChange);
  });

  api.get('/api/services/:name/backup', async (req, res) => {
    const dump = await backup(m, name(req));
    res.setHeader('content-type', 'application/octet-stream');
    res.end(dump);
  });
  api.post(
    '/api/services/:name/restore',
    express.raw({ type: 'application/octet-stream', limit: MAX_RESTORE_BYTES }),
    async (req, res) => {
      const n = name(req);
      if (!Buffer.isBuffer(req.body) || req.body.length === 0)
        throw new InvalidArgument('services:restore reads a dump from stdin: it was empty');
      if (req.body.length > MAX_RESTORE_BYTES) throw new PayloadTooLarge('dump too large');
      await restore(m, n, req.body);
      res.json(await info(n, false));
    },
  );
}

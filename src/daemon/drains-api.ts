// Log drains under /api/apps/:app/drains: list, add (the URL in the body), remove (the drain's
// id or its URL in the body, never in the path or query, which proxies and logs keep).
import type express from 'express';
import type { DrainEntry } from '../api/index.ts';
import type { DeployDeps } from '../deploy/index.ts';
import { parseDrainUrl, type DrainManager } from '../logs/index.ts';
import { InvalidArgument } from '../errors/index.ts';
import { appParam } from './params.ts';

export function mountDrainRoutes(
  api: express.Express,
  deps: DeployDeps,
  drains: DrainManager,
): void {
  api.get('/api/apps/:app/drains', (req, res) => {
    const name = appParam(deps.state, req);
    res.json(drains.list(name) satisfies DrainEntry[]);
  });
  api.post('/api/apps/:app/drains', (req, res) => {
    const name = appParam(deps.state, req);
    const url = parseDrainUrl((req.body as { url?: unknown } | undefined)?.url);
    res.status(201).json(drains.add(name, url) satisfies DrainEntry);
  });
  api.delete('/api/apps/:app/drains', (req, res) => {
    const name = appParam(deps.state, req);
    const which = (req.body as { drain?: unknown } | undefined)?.drain;
    if (typeof which !== 'string' || which === '')
      throw new InvalidArgument('name the drain to remove by its id or URL ({"drain": "…"})');
    res.json(drains.remove(name, which) satisfies DrainEntry);
  });
}

// `certs:auto` (issue 18): turn automatic certificates on for an app (an order now for each
// custom domain, renewals by the daemon's scheduler after that), off, or show their state.
import type express from 'express';
import type { AutoCertsInfo } from '../api/index.ts';
import type { AppName, State } from '../apps/index.ts';
import { parseAcmeEmail, type AutoCerts } from '../certs/index.ts';
import { appParam } from './params.ts';

export interface AutoCertsRoutes {
  state: State;
  auto: AutoCerts;
  directory: string;
  renewBeforeMs: number;
}

export function mountAutoCertRoutes(api: express.Express, o: AutoCertsRoutes): void {
  const info = (app: AppName): AutoCertsInfo => {
    const s = o.auto.status(app);
    return {
      app,
      ...s,
      directory: o.directory,
      renewBeforeDays: Math.round((o.renewBeforeMs / 86_400_000) * 100) / 100,
    };
  };
  api.get('/api/apps/:app/certs/auto', (req, res) => void res.json(info(appParam(o.state, req))));
  api.post('/api/apps/:app/certs/auto', async (req, res) => {
    const app = appParam(o.state, req);
    const raw = (req.body as { email?: unknown } | undefined)?.email;
    const email = raw === undefined || raw === null ? undefined : parseAcmeEmail(raw);
    // Orders run now, in this request: the answer says per domain what came of it.
    const outcomes = await o.auto.enable(app, email);
    res.json({ ...info(app), outcomes } satisfies AutoCertsInfo);
  });
  api.delete('/api/apps/:app/certs/auto', (req, res) => {
    const app = appParam(o.state, req);
    o.auto.disable(app);
    res.json(info(app));
  });
}

// The whole route table, derived from state and the running processes: what the router is
// told at daemon start and whenever domains change. Deploys use the router's `switch`.
import type { RouteTable, Backend } from '../router/index.ts';
import { appProcesses } from './processes.ts';
import type { DeployDeps } from './types.ts';

export async function routeTable(deps: DeployDeps): Promise<RouteTable> {
  const table: RouteTable = { apps: {}, domain: deps.domain };
  for (const app of deps.state.apps.list()) {
    const backends: Backend[] = [];
    if (app.liveRelease !== null) {
      for (const p of await appProcesses(deps, app.name)) {
        if (p.labels.type !== 'web' || p.labels.release !== `v${app.liveRelease}` || p.info.state !== 'running' || p.info.ip === null) continue;
        const port = Number(deps.state.releases.get(app.name, app.liveRelease).config.PORT ?? 5000);
        backends.push({ host: p.info.ip, port, id: `web.${p.labels.n}@${p.labels.release}` });
      }
    }
    table.apps[app.name] = { domains: deps.state.apps.domains(app.name), backends };
  }
  return table;
}

export async function publishRoutes(deps: DeployDeps): Promise<void> {
  await deps.router.setRoutes(await routeTable(deps));
}

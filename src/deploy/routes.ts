// The whole route table, from state and the supervisor's healthy processes in rotation: what
// the router is told at daemon start and whenever domains change. Deploys, scaling and
// restarts change one app's backends through the supervisor's `route`.
import type { RouteTable } from '../router/index.ts';
import type { DeployDeps } from './types.ts';

export function routeTable(deps: DeployDeps): RouteTable {
  const table: RouteTable = { apps: {}, domain: deps.domain };
  for (const app of deps.state.apps.list()) {
    table.apps[app.name] = {
      domains: deps.state.apps.domains(app.name),
      backends: deps.scheduler?.routes(app.name) ?? deps.supervisor.backends(app.name),
    };
  }
  return table;
}

export async function publishRoutes(deps: DeployDeps): Promise<void> {
  await deps.router.setRoutes(routeTable(deps));
}

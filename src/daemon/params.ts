// Route parameters, parsed once: the one place a route's `:app` becomes an AppName.
import type { Request } from 'express';
import { parseAppName, type AppName, type State } from '../apps/index.ts';

/** The app a route names, parsed by the app-name rule and known to exist (else AppNotFound). */
export function appParam(state: State, req: Request): AppName {
  const name = parseAppName(req.params.app);
  state.apps.get(name);
  return name;
}

// The router follows the scheduler: every app's backends are the addresses of its web
// processes as `processes` reports them. With `local` the supervisor already switches the
// route itself; with a scheduler whose tasks move on their own (Swarm restarts, reschedules
// and rolls them) this loop is how the router learns of it. It switches an app only when
// its set of addresses changed, one app at a time, so the router's drain accounting sees
// each change once.
import type { AppName } from '../apps/index.ts';
import type { RouterPort } from '../deploy/index.ts';
import type { Backend } from '../router/index.ts';
import type { Scheduler } from './types.ts';

export interface RouteFollower {
  /** One pass over every app; resolves when the changed ones were switched. */
  sync(): Promise<void>;
  stop(): void;
}

export async function backendsOf(s: Scheduler, app: AppName): Promise<Backend[]> {
  return (await s.processes(app))
    .filter((p) => p.type === 'web' && p.address !== null)
    .map((p) => ({ host: p.address!.host, port: p.address!.port, id: `web.${p.n}@v${p.version}` }));
}

export function followRoutes(
  scheduler: Scheduler,
  router: Pick<RouterPort, 'switch'>,
  apps: () => AppName[],
  opts: { everyMs?: number; onError?: (e: unknown) => void } = {},
): RouteFollower {
  const last = new Map<string, string>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  const pass = async () => {
    for (const app of apps()) {
      const backends = await backendsOf(scheduler, app);
      const key = JSON.stringify(backends.map((b) => `${b.host}:${b.port}`).sort());
      if (last.get(app) === key) continue;
      await router.switch(app, backends);
      last.set(app, key);
    }
  };
  const sync = () => {
    // One pass at a time: a slow engine never has two passes racing on one app's route.
    running ??= pass().finally(() => (running = null));
    return running;
  };
  const tick = () => {
    timer = setTimeout(() => {
      sync()
        .catch((e: unknown) => opts.onError?.(e))
        .finally(() => {
          if (timer !== null) tick();
        });
    }, opts.everyMs ?? 1000);
  };
  if (opts.everyMs !== 0) tick();
  return {
    sync,
    stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}

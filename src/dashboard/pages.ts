// What each page shows, read from the same state and pipeline functions the API uses, in the
// API contract's shapes (src/api): a field the API renames is a type error here too.
import type { BuildInfo, DomainsInfo, ProcessInfo, ReleaseInfo } from '../api/index.ts';
import type { AppName, Build } from '../apps/index.ts';
import { appUrl, type DeployDeps } from '../deploy/index.ts';
import { formatLine } from '../logs/index.ts';

export type AppStatus = 'up' | 'down' | 'idle' | 'stopped' | 'crashed' | 'not deployed';

type ProcRow = Pick<
  ProcessInfo,
  'process' | 'type' | 'release' | 'state' | 'startedAt' | 'restarts' | 'lastExit'
>;

/** A release row: the contract's fields plus what the page's buttons need. */
type ReleaseRow = Pick<
  ReleaseInfo,
  'version' | 'description' | 'gitSha' | 'createdAt' | 'buildpack' | 'status'
> & { live: boolean; canRollback: boolean };

/** The supervisor's view of the app's processes: what `paas ps` shows (crashes and restarts included). */
function processRows(deps: DeployDeps, name: AppName): ProcRow[] {
  return deps.supervisor
    .list(name)
    .map((p) => ({
      process: `${p.type}.${p.n}`,
      type: p.type,
      release: `v${p.version}`,
      state: p.state,
      startedAt:
        p.state === 'running' || p.state === 'starting' ? new Date(p.upSince).toISOString() : null,
      restarts: p.restarts,
      lastExit: p.lastExit,
    }))
    .sort((a, b) => a.process.localeCompare(b.process, 'en', { numeric: true }));
}

/** up: every wanted process runs; down: fewer run than wanted; idle: scaled to zero; stopped: ps:stop. */
function statusOf(
  app: { liveRelease: number | null; stopped: boolean },
  formation: Record<string, number>,
  procs: ProcRow[],
): AppStatus {
  if (app.liveRelease === null) return 'not deployed';
  if (app.stopped) return 'stopped';
  const wanted = Object.values(formation).reduce((a, b) => a + b, 0);
  if (wanted === 0) return 'idle';
  if (procs.some((p) => p.state === 'crashed')) return 'crashed';
  const running = procs.filter(
    (p) => p.state === 'running' && p.release === `v${app.liveRelease}`,
  ).length;
  return running >= wanted ? 'up' : 'down';
}

/** The formation rows to show scale controls for: the live release's process types. */
function formationRows(
  deps: DeployDeps,
  name: AppName,
  live: number | null,
): { type: string; quantity: number }[] {
  const formation = deps.state.apps.formation(name);
  const types = new Set(Object.keys(formation));
  if (live !== null)
    for (const t of Object.keys(deps.state.releases.get(name, live).processes)) types.add(t);
  // The release phase is not a long-running process type.
  types.delete('release');
  return [...types].sort().map((type) => ({ type, quantity: formation[type] ?? 0 }));
}

export async function appsPage(deps: DeployDeps) {
  const apps = [];
  for (const a of deps.state.apps.list()) {
    const procs = processRows(deps, a.name);
    const formation = deps.state.apps.formation(a.name);
    const running = procs.filter((p) => p.state === 'running').length;
    apps.push({
      name: a.name,
      release: a.liveRelease === null ? null : `v${a.liveRelease}`,
      status: statusOf(a, formation, procs),
      processes: `${running} running`,
      url: appUrl(a.name, deps.domain, deps.httpPort),
    });
  }
  return { apps };
}

export async function appPage(
  deps: DeployDeps,
  name: AppName,
  opts: { reveal?: string; logLines?: number } = {},
) {
  const app = deps.state.apps.get(name);
  const procs = processRows(deps, name);
  const live = app.liveRelease;
  const config = deps.state.apps.config(name);
  return {
    app: {
      name,
      release: live === null ? null : `v${live}`,
      url: appUrl(name, deps.domain, deps.httpPort),
      status: statusOf(app, deps.state.apps.formation(name), procs),
      stopped: app.stopped,
    },
    processes: procs,
    formation: formationRows(deps, name, live),
    releases: deps.state.releases.list(name, 50).map((r): ReleaseRow => ({
      version: `v${r.version}`,
      description: r.description,
      gitSha: r.gitSha,
      createdAt: r.createdAt,
      buildpack: r.buildpack,
      status: r.deploy?.status ?? 'not deployed',
      live: r.version === live,
      canRollback: r.version !== live && r.deploy?.status === 'succeeded',
    })),
    // Values stay on the server unless this very response reveals one (issue 9).
    config: Object.keys(config).map((key) =>
      key === opts.reveal ? { key, revealed: true, value: config[key] } : { key, revealed: false },
    ),
    domains: {
      default: `${name}.${deps.domain}`,
      custom: deps.state.apps.domains(name),
    } satisfies DomainsInfo,
    builds: deps.state.builds.list(name, 20) satisfies BuildInfo[],
    logs: deps.logs.tail(name, opts.logLines ?? 100).map(formatLine),
  };
}

/**
 * A build's log: the build and platform lines written while it ran (the log store keeps
 * lines per app, not per build; builds of one app never overlap, they hold the app's lock).
 */
export function buildLog(deps: DeployDeps, build: Build, maxLines = 5000): string[] {
  const end = build.finishedAt ?? '9999';
  return deps.logs
    .tail(build.app, maxLines * 4)
    .filter(
      (l) =>
        (l.source === 'build' || l.source === 'system') && l.ts >= build.startedAt && l.ts <= end,
    )
    .slice(-maxLines)
    .map(formatLine);
}

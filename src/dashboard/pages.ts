// What each page shows, read from the same state and pipeline functions the API uses.
import type { AppName, Build } from '../apps/index.ts';
import { appProcesses, appUrl, type DeployDeps } from '../deploy/index.ts';
import { formatLine } from '../logs/index.ts';

export type AppStatus = 'up' | 'down' | 'idle' | 'not deployed';

interface ProcRow { process: string; type: string; release: string; state: string; startedAt: string | null }

async function processRows(deps: DeployDeps, name: AppName): Promise<ProcRow[]> {
  return (await appProcesses(deps, name)).map((p) => ({
    process: `${p.labels.type}.${p.labels.n}`, type: p.labels.type, release: p.labels.release, state: p.info.state, startedAt: p.info.startedAt,
  })).sort((a, b) => a.process.localeCompare(b.process, 'en', { numeric: true }));
}

/** up: every wanted process runs; down: a live release with fewer running than wanted; idle: scaled to zero. */
function statusOf(live: number | null, formation: Record<string, number>, procs: ProcRow[]): AppStatus {
  if (live === null) return 'not deployed';
  const wanted = Object.values(formation).reduce((a, b) => a + b, 0);
  if (wanted === 0) return 'idle';
  const running = procs.filter((p) => p.state === 'running' && p.release === `v${live}`).length;
  return running >= wanted ? 'up' : 'down';
}

/** The formation rows to show scale controls for: the live release's process types. */
function formationRows(deps: DeployDeps, name: AppName, live: number | null): { type: string; quantity: number }[] {
  const formation = deps.state.apps.formation(name);
  const types = new Set(Object.keys(formation));
  if (live !== null) for (const t of Object.keys(deps.state.releases.get(name, live).processes)) types.add(t);
  // The release phase is not a long-running process type.
  types.delete('release');
  return [...types].sort().map((type) => ({ type, quantity: formation[type] ?? 0 }));
}

export async function appsPage(deps: DeployDeps) {
  const apps = [];
  for (const a of deps.state.apps.list()) {
    const procs = await processRows(deps, a.name);
    const formation = deps.state.apps.formation(a.name);
    const running = procs.filter((p) => p.state === 'running').length;
    apps.push({
      name: a.name,
      release: a.liveRelease === null ? null : `v${a.liveRelease}`,
      status: statusOf(a.liveRelease, formation, procs),
      processes: `${running} running`,
      url: appUrl(a.name, deps.domain, deps.httpPort),
    });
  }
  return { apps };
}

export async function appPage(deps: DeployDeps, name: AppName, opts: { reveal?: string; logLines?: number } = {}) {
  const app = deps.state.apps.get(name);
  const procs = await processRows(deps, name);
  const live = app.liveRelease;
  const config = deps.state.apps.config(name);
  return {
    app: {
      name, release: live === null ? null : `v${live}`, url: appUrl(name, deps.domain, deps.httpPort),
      status: statusOf(live, deps.state.apps.formation(name), procs),
    },
    processes: procs,
    formation: formationRows(deps, name, live),
    releases: deps.state.releases.list(name, 50).map((r) => ({
      version: `v${r.version}`, description: r.description, gitSha: r.gitSha, createdAt: r.createdAt, buildpack: r.buildpack,
      status: r.deploy?.status ?? 'not deployed', live: r.version === live,
      canRollback: r.version !== live && r.deploy?.status === 'succeeded',
    })),
    // Values stay on the server unless this very response reveals one (issue 9).
    config: Object.keys(config).map((key) => key === opts.reveal ? { key, revealed: true, value: config[key] } : { key, revealed: false }),
    domains: { default: `${name}.${deps.domain}`, custom: deps.state.apps.domains(name) },
    builds: deps.state.builds.list(name, 20),
    logs: deps.logs.tail(name, opts.logLines ?? 100).map(formatLine),
  };
}

/**
 * A build's log: the build and platform lines written while it ran (the log store keeps
 * lines per app, not per build; builds of one app never overlap, they hold the app's lock).
 */
export function buildLog(deps: DeployDeps, build: Build, maxLines = 5000): string[] {
  const end = build.finishedAt ?? '9999';
  return deps.logs.tail(build.app, maxLines * 4)
    .filter((l) => (l.source === 'build' || l.source === 'system') && l.ts >= build.startedAt && l.ts <= end)
    .slice(-maxLines).map(formatLine);
}

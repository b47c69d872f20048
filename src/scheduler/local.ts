// `local`: today's behaviour behind the Scheduler interface. An adapter over src/deploy's
// supervisor and verbs, not a second implementation: a push through the pipeline and a call
// here start, check, route and retire processes the same way.
import { Readable } from 'node:stream';
import type { AppName, ProcessType, Release } from '../apps/index.ts';
import {
  replaceProcesses,
  Reporter,
  runAttached,
  scale,
  type DeployDeps,
  type Output,
} from '../deploy/index.ts';
import type { Backend } from '../router/index.ts';
import type { ProcessLogLine, RunIO, ScheduledProcess, Scheduler } from './types.ts';

export class LocalScheduler implements Scheduler {
  readonly name = 'local' as const;
  private readonly deps: DeployDeps;

  constructor(deps: DeployDeps) {
    this.deps = deps;
  }

  deploy(release: Release, out: Output, onLive?: () => void): Promise<void> {
    return replaceProcesses(
      this.deps,
      release,
      new Reporter(release.app, out, this.deps.logs),
      onLive,
    );
  }

  scale(app: AppName, changes: ReadonlyMap<ProcessType, number>): Promise<Record<string, number>> {
    return scale(this.deps, app, changes);
  }

  async processes(app: AppName): Promise<ScheduledProcess[]> {
    return this.deps.supervisor.list(app).map((p) => ({
      type: p.type,
      n: p.n,
      version: p.version,
      state: p.state,
      id: p.id,
      address:
        p.type === 'web' && p.inRotation && p.healthy && p.ip !== null
          ? { host: p.ip, port: p.port }
          : null,
    }));
  }

  async logs(app: AppName, lines: number): Promise<ProcessLogLine[]> {
    return this.deps.logs
      .tail(app, lines, { source: 'app' })
      .map((l) => ({ ps: l.ps ?? '', text: l.text }));
  }

  run(release: Release, command: readonly string[], io: RunIO): Promise<number> {
    return runAttached(this.deps, release, command, {
      stdin: io.stdin ?? Readable.from([]),
      onData: io.onData,
      signal: io.signal,
    });
  }

  async destroy(app: AppName): Promise<void> {
    const sup = this.deps.supervisor;
    const procs = sup.list(app);
    await sup.setRotation({ outOf: procs });
    await Promise.all(procs.map((p) => sup.retire(p, 0)));
  }

  routes(app: string): Backend[] {
    return this.deps.supervisor.backends(app);
  }

  close(): void {
    this.deps.supervisor.stop();
  }
}

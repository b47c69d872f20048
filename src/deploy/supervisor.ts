// The daemon's view of every app process, and its restart policy. A process is a slot
// (app, type, n, release) backed by one container at a time; the supervisor waits on each
// container (runtime.wait, re-established after adoption), and when one exits unasked it
// logs how (exit code, signal or OOM), takes it out of the route and starts a new container
// in the same slot with Heroku-style backoff: at once, then 1 s, 2 s, 4 s… up to a cap. A
// slot that crashes `crashLoop` times in a row without staying up is shown as `crashed`.
// A slot's restarts, crash streak and last exit are kept in the state (apps/slots.ts) at each
// crash and restart, so a daemon that restarts finds them again for the processes it adopts.
// Every change of an app's route goes through `route(app)`, one at a time per app; callers
// change rotation only through `setRotation`, which routes itself.
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppName, Release, SlotHistory, SlotKey } from '../apps/index.ts';
import type { Backend } from '../router/index.ts';
import { exitOf, type ContainerInfo, type ExitStatus } from '../runtime/index.ts';
import { describeError, PaasError } from '../errors/index.ts';
import { checksFor, describeExit, runChecks } from './health.ts';
import { DEFAULT_PORT, removeContainer, startProcess, type ProcessLabels } from './processes.ts';
import { type Proc, type ProcessDeps, type ProcessSupervisor, type ProcView } from './types.ts';

export interface RestartPolicy {
  baseMs: number;
  capMs: number;
  crashLoop: number;
  stableMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  baseMs: 1000,
  capMs: 5 * 60_000,
  crashLoop: 3,
  stableMs: 30_000,
};

/** Delay before restart number `crashes` (1-based): none for the first, then doubling to the cap. */
export function backoffMs(crashes: number, p: RestartPolicy = DEFAULT_RESTART_POLICY): number {
  if (crashes <= 1) return 0;
  return Math.min(p.capMs, p.baseMs * 2 ** (crashes - 2));
}

/** How often an exit seen during the start check looks for the check's verdict. */
const VERDICT_POLL_MS = 50;

const NO_HISTORY: SlotHistory = { restarts: 0, crashes: 0, lastExit: null };

export class Supervisor implements ProcessSupervisor {
  private readonly deps: ProcessDeps;
  private readonly policy: RestartPolicy;
  private readonly procs = new Set<Proc>();
  private readonly routeTails = new Map<string, Promise<unknown>>();
  private stopped = false;
  /** Ends every watch's wait at once when the daemon stops (one listener per process). */
  private readonly stopping = new AbortController();

  constructor(deps: ProcessDeps, policy: Partial<RestartPolicy> = {}) {
    this.deps = deps;
    this.policy = { ...DEFAULT_RESTART_POLICY, ...policy };
    setMaxListeners(0, this.stopping.signal);
  }

  list(app?: string): ProcView[] {
    return [...this.procs]
      .filter((p) => app === undefined || p.app === app)
      .sort((a, b) => a.type.localeCompare(b.type) || a.n - b.n || a.version - b.version);
  }

  /**
   * Starts process `type.n` of the release and runs its checks; on failure nothing is left.
   * `resume` carries on the slot's recorded history (a slot refilled by converge) instead of
   * starting it fresh (a deploy or ps:restart).
   */
  async launch(
    release: Release,
    type: string,
    n: number,
    onInfo?: (line: string) => void,
    opts: { keepOnFailure?: boolean; resume?: boolean } = {},
  ): Promise<ProcView> {
    const started = await startProcess(this.deps, release, type, n);
    const key: SlotKey = { app: release.app, type, n, version: release.version };
    const slots = this.deps.state.slots;
    const past = this.record(release.app, () =>
      opts.resume === true ? slots.resume(key, started.info.id) : slots.start(key, started.info.id),
    );
    const proc: Proc = {
      app: release.app,
      type,
      n,
      version: release.version,
      id: started.info.id,
      ip: started.info.ip,
      port: started.port,
      state: 'starting',
      healthy: false,
      inRotation: false,
      wanted: true,
      ...(past ?? NO_HISTORY),
      upSince: Date.now(),
      timer: null,
    };
    this.procs.add(proc);
    this.watch(proc);
    try {
      await runChecks(
        this.deps,
        { id: proc.id, type, n, port: proc.port },
        checksFor(release, type, started.healthcheck, this.deps.startTimeoutMs ?? 30_000),
        onInfo,
      );
    } catch (e) {
      if (opts.keepOnFailure === true) {
        // Scaling and recovery keep the slot: the restart policy retries it with backoff.
        this.crashed(proc, crashText(e, ''));
        return proc;
      }
      proc.wanted = false;
      this.procs.delete(proc);
      this.record(proc.app, () => slots.forget(proc.id));
      await removeContainer(this.deps, proc.id, 0);
      throw e;
    }
    proc.healthy = true;
    proc.state = 'running';
    return proc;
  }

  /** A running container found at daemon start; `inRotation` when it belongs to the live release. */
  adopt(info: ContainerInfo, l: ProcessLabels, release: Release, inRotation: boolean): ProcView {
    const key: SlotKey = {
      app: release.app,
      type: l.type,
      n: Number(l.n),
      version: release.version,
    };
    const past = this.record(release.app, () => this.deps.state.slots.resume(key, info.id));
    const proc: Proc = {
      app: release.app,
      type: l.type,
      n: Number(l.n),
      version: release.version,
      id: info.id,
      ip: info.ip,
      port: l.type === 'web' ? Number(l.port ?? release.config.PORT ?? DEFAULT_PORT) : 0,
      state: 'running',
      healthy: true,
      inRotation,
      wanted: true,
      ...(past ?? NO_HISTORY),
      upSince: info.startedAt === null ? Date.now() : Date.parse(info.startedAt),
      timer: null,
    };
    this.procs.add(proc);
    this.deps.collector.watchContainer(info.id, release.app, `${l.type}.${l.n}`, info.logPath);
    this.watch(proc);
    return proc;
  }

  /**
   * Takes the process out of the route (waiting for its in-flight requests), then stops it:
   * SIGTERM, SIGKILL after the grace.
   */
  async retire(view: ProcView, graceMs: number): Promise<void> {
    const proc = this.own(view);
    if (proc === null) {
      // Already retired (or never ours): only its container may be left.
      await removeContainer(this.deps, view.id, graceMs);
      return;
    }
    proc.wanted = false;
    this.record(proc.app, () => this.deps.state.slots.forget(proc.id));
    if (proc.timer !== null) clearTimeout(proc.timer);
    proc.timer = null;
    proc.state = 'stopping';
    proc.healthy = false;
    if (proc.inRotation) {
      proc.inRotation = false;
      await this.route(proc.app).catch(() => undefined);
    }
    await removeContainer(this.deps, proc.id, graceMs);
    this.procs.delete(proc);
  }

  async setRotation(change: {
    into?: readonly ProcView[];
    outOf?: readonly ProcView[];
  }): Promise<void> {
    const apps = new Set<AppName>();
    for (const p of change.outOf ?? []) {
      const proc = this.own(p);
      if (proc === null || !proc.inRotation) continue;
      proc.inRotation = false;
      if (proc.type === 'web') apps.add(proc.app);
    }
    for (const p of change.into ?? []) {
      const proc = this.own(p);
      // Only web processes take traffic; an unhealthy one joins when its restart passes.
      if (proc === null || proc.type !== 'web' || proc.inRotation) continue;
      proc.inRotation = true;
      apps.add(proc.app);
    }
    await Promise.all([...apps].map((app) => this.route(app)));
  }

  /** The supervisor's record behind a view it handed out; null once the slot is retired. */
  private own(view: ProcView): Proc | null {
    const proc = view as Proc;
    return this.procs.has(proc) ? proc : null;
  }

  /** The app's current backends: healthy web processes in rotation. */
  backends(app: string): Backend[] {
    return this.list(app)
      .filter((p) => p.type === 'web' && p.inRotation && p.healthy && p.ip !== null)
      .map((p) => ({ host: p.ip!, port: p.port, id: `web.${p.n}@v${p.version}` }));
  }

  /** Points the app's route at `backends(app)`; resolves when the backends it dropped drained. */
  private route(app: string): Promise<void> {
    const prev = this.routeTails.get(app) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(() => this.deps.router.switch(app, this.backends(app)));
    this.routeTails.set(app, next);
    return next.then(() => undefined);
  }

  /** The daemon is going down: containers keep running, nothing is restarted by this process. */
  stop(): void {
    this.stopped = true;
    this.stopping.abort();
    for (const p of this.procs) if (p.timer !== null) clearTimeout(p.timer);
  }

  private watch(proc: Proc): void {
    const id = proc.id;
    const mine = () => !this.stopped && proc.id === id && proc.wanted;
    void (async () => {
      const exit = await exitOf(this.deps.runtime, id, {
        signal: this.stopping.signal,
        keepWaiting: mine,
      });
      if (exit === null) return;
      // An exit during the start check is the check's to report: wait for its verdict. A
      // check that passed all the same (the process answered, then ended before the slot
      // was marked running) leaves the exit to be a crash now, or the slot would show
      // running, and be routed to, with no process behind it.
      while (mine() && proc.state === 'starting')
        await sleep(VERDICT_POLL_MS, undefined, { ref: false });
      this.onExit(proc, id, exit);
    })();
  }

  private onExit(proc: Proc, id: string, exit: ExitStatus): void {
    // Only a running process's exit is a new crash. A check that saw the exit reported it
    // (and counted the crash): the slot is restarting (or crashed) with that very container,
    // and an exit the wait delivers late must not count it again and start a second restart.
    if (this.stopped || proc.id !== id || !proc.wanted || proc.state !== 'running') return;
    this.crashed(proc, describeExit(exit));
  }

  private log(proc: Proc, text: string): void {
    this.deps.logs.append(proc.app, { source: 'system', text: `${proc.type}.${proc.n}: ${text}` });
  }

  /**
   * Writes (or reads) a slot's history. A failure is logged, never thrown: the history is what
   * `ps` shows, and a crash must still be restarted when the state cannot be written.
   */
  private record<T>(app: AppName, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      if (!this.stopped)
        this.deps.logs.append(app, {
          source: 'system',
          text: `could not record the restart history: ${describeError(e).split('\n')[0]}`,
        });
      return undefined;
    }
  }

  private crashed(proc: Proc, how: string): void {
    const was = proc.state;
    proc.healthy = false;
    if (Date.now() - proc.upSince >= this.policy.stableMs) proc.crashes = 0;
    proc.crashes++;
    proc.lastExit = how;
    this.record(proc.app, () => this.deps.state.slots.crashed(proc.id, proc.crashes, how));
    const delay = backoffMs(proc.crashes, this.policy);
    if (proc.timer !== null) clearTimeout(proc.timer); // one restart per slot, never two
    proc.state = proc.crashes >= this.policy.crashLoop ? 'crashed' : 'restarting';
    const when = delay === 0 ? 'restarting now' : `restarting in ${Math.round(delay / 100) / 10}s`;
    this.log(proc, `v${proc.version} ${how}; ${when}`);
    if (proc.state === 'crashed')
      this.log(proc, `State changed from ${was} to crashed (${proc.crashes} crashes in a row)`);
    if (proc.type === 'web' && proc.inRotation) void this.route(proc.app).catch(() => undefined);
    proc.timer = setTimeout(() => void this.restart(proc), delay);
  }

  private async restart(proc: Proc): Promise<void> {
    proc.timer = null;
    if (!proc.wanted || this.stopped) return;
    await removeContainer(this.deps, proc.id, 0);
    let release: Release;
    try {
      release = this.deps.state.releases.get(proc.app, proc.version);
    } catch {
      return;
    }
    try {
      const started = await startProcess(this.deps, release, proc.type, proc.n);
      if (!proc.wanted || this.stopped) {
        await removeContainer(this.deps, started.info.id, 0);
        return;
      }
      const from = proc.id;
      proc.id = started.info.id;
      proc.ip = started.info.ip;
      proc.upSince = Date.now();
      proc.restarts++;
      this.record(proc.app, () => this.deps.state.slots.restarted(from, proc.id, proc.restarts));
      const was = proc.state;
      proc.state = 'starting';
      this.watch(proc);
      await runChecks(
        this.deps,
        { id: proc.id, type: proc.type, n: proc.n, port: proc.port },
        checksFor(release, proc.type, started.healthcheck, this.deps.startTimeoutMs ?? 30_000),
      );
      if (proc.id !== started.info.id || !proc.wanted) return;
      proc.healthy = true;
      proc.state = 'running';
      this.log(proc, `restarted (restart ${proc.restarts}); State changed from ${was} to running`);
      if (proc.type === 'web' && proc.inRotation) await this.route(proc.app);
    } catch (e) {
      if (!proc.wanted || this.stopped) return;
      this.crashed(proc, crashText(e, 'failed to restart: '));
    }
  }
}

/**
 * What a failed start is logged and shown (`ps`'s last exit) as: how the process ended when it
 * ended during its checks, as a crash after them reads; else `prefix` and the error's first line.
 */
function crashText(e: unknown, prefix: string): string {
  if (e instanceof PaasError && typeof e.details.exited === 'string') return e.details.exited;
  return `${prefix}${describeError(e).split('\n')[0]}`;
}

// `swarm`: an app's processes as Docker Swarm services, one per process type
// (`<app>_<type>`, replicas = formation), driven over the Engine API (engine.ts). Swarm
// places, restarts (on-failure) and rolls tasks (start-first, rollback on failure); paas
// keeps the release, the state and the route: a web task is routable at its node's address
// and its host-mode published port once it runs and answers HTTP there.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppName, ProcessType, Release } from '../apps/index.ts';
import {
  parseAppJsonChecks,
  processEnv,
  processOrder,
  Reporter,
  resourcesFor,
  stopGraceMs,
  wanted,
  webPort,
  type Output,
  type ProcessDeps,
  type RouterPort,
} from '../deploy/index.ts';
import type { Backend } from '../router/index.ts';
import { Conflict, DeployFailed, describeError, Unsupported } from '../errors/index.ts';
import { demux, registryAuth, type Engine } from './engine.ts';
import { LABEL, serviceName, serviceSpec } from './swarm-spec.ts';
import type { ProcessLogLine, RunIO, ScheduledProcess, Scheduler } from './types.ts';

// node:http through require, not `import`: Node's ESM view of node:http reads every export,
// and three (WebSocket, CloseEvent, MessageEvent) load Node's bundled undici, ~10 MB resident
// that the daemon never uses (README: Footprint; test/lazy-imports.test.ts).
const { request } = createRequire(import.meta.url)('node:http') as typeof Http;

export interface SwarmDeps extends Pick<
  ProcessDeps,
  'state' | 'store' | 'logs' | 'defaultLimits' | 'stopGraceMs'
> {
  engine: Engine;
  /**
   * Our registry as the nodes reach it (`host:port`); images are `<registry>/<app>:vN`. A
   * function when it is known only once the daemon listens (port 0).
   */
  registry: string | (() => string);
  /** The token the nodes pull with (sent once per service change as X-Registry-Auth). */
  token: string | (() => string);
  /** How long a rollout may take before it counts as failed (default 120 s). */
  startTimeoutMs?: number;
  /** How long a new task must stay up before Swarm moves on (default 5 s). */
  monitorMs?: number;
  /**
   * The router the daemon runs: with it, `start` follows every app's web tasks into the
   * route, and each task Swarm stops is drained first (see `followApp`). Without it (the
   * contract test), nothing is routed and stopped tasks end at their stop grace.
   */
  router?: Pick<RouterPort, 'switch'>;
  /** How often the route and the logs follow Swarm (default 1 s). */
  followEveryMs?: number;
  /** Where a failed background pass is reported. */
  onError?: (e: unknown) => void;
}

interface Service {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas: number } };
  };
  UpdateStatus?: { State?: string; Message?: string };
}

interface Task {
  ID: string;
  Slot?: number;
  NodeID?: string;
  DesiredState: string;
  Spec: { ContainerSpec?: { Labels?: Record<string, string> } };
  Status: {
    State: string;
    Err?: string;
    ContainerStatus?: { ExitCode?: number; ContainerID?: string };
    PortStatus?: { Ports?: { TargetPort: number; PublishedPort: number }[] };
  };
}

const ROLLED_BACK = new Set([
  'rollback_started',
  'rollback_completed',
  'rollback_paused',
  'paused',
]);
const FAILED_TASK = new Set(['failed', 'rejected', 'orphaned']);

const q = (filters: Record<string, string[]>) => encodeURIComponent(JSON.stringify(filters));

export class SwarmScheduler implements Scheduler {
  readonly name = 'swarm' as const;
  private readonly deps: SwarmDeps;
  private readonly nodes = new Map<string, string>();
  /** Web tasks that answered HTTP at their address once: they may take traffic. */
  private readonly checked = new Set<string>();
  /** Per app: the backends the router was last given, and the tasks behind them. */
  private readonly routed = new Map<
    string,
    { key: string; backends: Backend[]; tasks: Set<string> }
  >();
  /** Stopped web tasks on this node that were sent SIGTERM after their drain. */
  private readonly termed = new Set<string>();
  /** Apps being destroyed: the follower keeps its hands off their route. */
  private readonly destroying = new Set<string>();
  /** Per service: the newest log line already in the log store (ns since the epoch). */
  private readonly logSince = new Map<string, bigint>();
  private readonly startedNs = BigInt(Date.now()) * 1_000_000n;
  /** This engine's node: its tasks' containers are reachable through the same socket. */
  private selfNode: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(deps: SwarmDeps) {
    this.deps = deps;
  }

  private get registry(): string {
    return typeof this.deps.registry === 'string' ? this.deps.registry : this.deps.registry();
  }

  private get auth(): Record<string, string> {
    return {
      'X-Registry-Auth': registryAuth(
        this.registry,
        'paas',
        typeof this.deps.token === 'string' ? this.deps.token : this.deps.token(),
      ),
    };
  }

  /**
   * Checks the engine is a Swarm manager (a loud error otherwise, before the daemon serves),
   * routes every app's web tasks once, then follows the route and the logs every second.
   */
  async start(): Promise<void> {
    const info = await this.deps.engine.call<{
      Swarm?: { NodeID?: string; LocalNodeState?: string; ControlAvailable?: boolean };
    }>('GET', '/info');
    if (info.Swarm?.LocalNodeState !== 'active' || info.Swarm.ControlAvailable !== true)
      throw new Unsupported(
        `--scheduler swarm: the engine at ${this.deps.engine.socketPath} is not a Swarm manager (docker swarm init, docs/scaling.md)`,
        { scheduler: 'swarm' },
      );
    this.selfNode = info.Swarm.NodeID ?? null;
    await this.followAll();
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.followAll()
          .catch((e: unknown) => this.deps.onError?.(e))
          .finally(() => {
            if (this.timer !== null) tick();
          });
      }, this.deps.followEveryMs ?? 1000);
    };
    tick();
  }

  routes(app: string): Backend[] {
    return this.routed.get(app)?.backends ?? [];
  }

  private async followAll(): Promise<void> {
    for (const a of this.deps.state.apps.list()) {
      await this.followApp(a.name);
      await this.pumpLogs(a.name).catch((e: unknown) => this.deps.onError?.(e));
    }
  }

  /**
   * One pass of the router following an app's web tasks, one pass at a time. Swarm stops a
   * web task with a signal it ignores (swarm-spec.ts, `holdStop`), so a task Swarm retired
   * (a rolling update's old one, a scale-down) keeps serving until this pass took it out of
   * the route and the router drained it; then it gets its SIGTERM (on this node; on other
   * nodes it is killed at the end of its stop grace). A slot whose new task does not answer
   * yet keeps its old one in the route.
   */
  followApp(app: AppName): Promise<void> {
    return this.enqueue(async () => {
      const router = this.deps.router;
      if (router === undefined || this.destroying.has(app)) return;
      const { backends, tasks, stale } = await this.routable(app);
      const key = JSON.stringify(backends.map((b) => `${b.host}:${b.port}`).sort());
      const was = this.routed.get(app);
      if (was?.key !== key) {
        await router.switch(app, backends);
      }
      this.routed.set(app, { key, backends, tasks });
      for (const t of stale) await this.terminate(t);
    });
  }

  /** Route changes one at a time, so the router's drain accounting sees each once. */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    const pass = this.chain.then(fn);
    this.chain = pass.catch(() => undefined);
    return pass;
  }

  /** The web backends an app should have now, and the retired tasks already out of them. */
  private async routable(
    app: string,
  ): Promise<{ backends: Backend[]; tasks: Set<string>; stale: Task[] }> {
    const before = this.routed.get(app)?.tasks ?? new Set<string>();
    const backends: Backend[] = [];
    const tasks = new Set<string>();
    const stale: Task[] = [];
    for (const s of await this.services(app)) {
      if (s.Spec.Name !== serviceName(app, 'web')) continue;
      const bySlot = new Map<number, Task[]>();
      for (const t of await this.tasks(s.Spec.Name, false))
        bySlot.set(t.Slot ?? 0, [...(bySlot.get(t.Slot ?? 0) ?? []), t]);
      for (const [slot, all] of bySlot) {
        const up = (t: Task) => t.Status.State === 'running';
        const wantedNow = all.filter((t) => t.DesiredState === 'running');
        const ok: Task[] = [];
        for (const t of wantedNow) if (up(t) && (await this.answers(t))) ok.push(t);
        // Until its replacement answers, a slot keeps the retired task it routed to.
        const use =
          ok.length > 0 || wantedNow.length === 0
            ? ok
            : all.filter((t) => t.DesiredState !== 'running' && up(t) && before.has(t.ID));
        for (const t of use) {
          const a = await this.address(t);
          if (a === null) continue;
          const v = t.Spec.ContainerSpec?.Labels?.[LABEL.release] ?? 'v0';
          backends.push({ host: a.host, port: a.port, id: `web.${slot}@${v}` });
          tasks.add(t.ID);
        }
        for (const t of all)
          if (t.DesiredState !== 'running' && up(t) && !tasks.has(t.ID)) stale.push(t);
      }
    }
    backends.sort((a, b) => (a.id ?? '').localeCompare(b.id ?? ''));
    return { backends, tasks, stale };
  }

  /** A web task may take traffic once it answered HTTP at its address. */
  private async answers(t: Task): Promise<boolean> {
    if (this.checked.has(t.ID)) return true;
    const a = await this.address(t);
    if (a === null || !(await answersHttp(a.host, a.port))) return false;
    if (this.checked.size > 10_000) this.checked.clear();
    this.checked.add(t.ID);
    return true;
  }

  /** SIGTERM to a drained, retired task whose container runs on this engine. */
  private async terminate(t: Task): Promise<void> {
    const id = t.Status.ContainerStatus?.ContainerID;
    if (this.termed.has(t.ID) || id === undefined || t.NodeID !== this.selfNode) return;
    if (this.termed.size > 10_000) this.termed.clear();
    this.termed.add(t.ID);
    await this.deps.engine
      .call('POST', `/containers/${id}/kill?signal=SIGTERM`)
      .catch(() => undefined);
  }

  /** The lines the app's tasks wrote since the last pass, into the log store (`paas logs`). */
  private async pumpLogs(app: AppName): Promise<void> {
    for (const s of await this.services(app)) {
      const type = s.Spec.Labels?.[LABEL.type] ?? '?';
      if (s.Spec.Name !== serviceName(app, type)) continue; // a one-off reads its own
      const since = this.logSince.get(s.ID) ?? this.startedNs;
      const buf = await this.deps.engine.raw(
        'GET',
        `/services/${s.ID}/logs?stdout=1&stderr=1&timestamps=1&details=1&since=${since / 1_000_000_000n}.${String(since % 1_000_000_000n).padStart(9, '0')}`,
      );
      const lines: { ns: bigint; ts: string; task: string; text: string }[] = [];
      for (const f of demux(buf))
        for (const raw of f.data.toString('utf8').split('\n')) {
          const m = LOG_LINE.exec(raw);
          const ns = m === null ? null : nsOf(m[1]!);
          if (m === null || ns === null || ns <= since) continue;
          lines.push({ ns, ts: m[1]!, task: m[3]!, text: m[4]! });
        }
      if (lines.length === 0) continue;
      lines.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
      const slots = new Map((await this.tasks(s.Spec.Name, false)).map((t) => [t.ID, t.Slot ?? 0]));
      for (const l of lines)
        this.deps.logs.append(app, {
          source: 'app',
          ps: `${type}.${slots.get(l.task) ?? 0}`,
          text: l.text,
          ts: new Date(Number(l.ns / 1_000_000n)).toISOString(),
        });
      this.logSince.set(s.ID, lines[lines.length - 1]!.ns);
    }
  }

  async deploy(release: Release, out: Output, onLive?: () => void): Promise<void> {
    const r = new Reporter(release.app, out, this.deps.logs);
    const formation = this.deps.state.apps.formation(release.app);
    const image = await this.deps.store.resolveImage(release.image);
    const port = webPort(release, image.config).port;
    const existing = new Map(
      (await this.services(release.app))
        .filter((s) => s.Spec.Name === serviceName(release.app, s.Spec.Labels?.[LABEL.type] ?? ''))
        .map((s) => [s.Spec.Name, s]),
    );
    const changed: { name: string; created: boolean }[] = [];
    try {
      for (const type of processOrder(release)) {
        const name = serviceName(release.app, type);
        const replicas = wanted(formation, type);
        const spec = this.spec(
          release,
          type,
          release.processes[type]!,
          replicas,
          image.config.Env,
          port,
        );
        const old = existing.get(name);
        await r.timed(
          `Rolling ${name} to v${release.version} (${replicas} task${replicas === 1 ? '' : 's'}, start-first)…`,
          async () => {
            if (old === undefined) {
              await this.deps.engine.call('POST', '/services/create', spec, this.auth);
              changed.push({ name, created: true });
            } else {
              await this.deps.engine.call(
                'POST',
                `/services/${old.ID}/update?version=${old.Version.Index}`,
                spec,
                this.auth,
              );
              changed.push({ name, created: false });
            }
            await this.settle(
              name,
              release.version,
              replicas,
              type === 'web' ? webProbe(release, r) : null,
            );
            // The route moves to the new tasks (and the old ones drain) before the next type.
            if (type === 'web') await this.followApp(release.app);
          },
        );
      }
    } catch (e) {
      await this.undo(changed);
      await this.followApp(release.app).catch(() => undefined);
      throw new DeployFailed(
        `${describeError(e)}\nthe update was rolled back; v${release.version} is not live and the old release keeps serving`,
        { step: 'check' },
      );
    }
    onLive?.();
    // Types the new release no longer has go away with their services.
    const keep = new Set(processOrder(release).map((t) => serviceName(release.app, t)));
    for (const [name, s] of existing)
      if (!keep.has(name)) await this.deps.engine.call('DELETE', `/services/${s.ID}`);
  }

  async scale(
    app: AppName,
    changes: ReadonlyMap<ProcessType, number>,
  ): Promise<Record<string, number>> {
    const unlock = await this.deps.state.locks.acquire(app, 'scale');
    try {
      const a = this.deps.state.apps.get(app);
      const release =
        a.liveRelease === null ? null : this.deps.state.releases.get(app, a.liveRelease);
      if (release !== null) {
        const types = processOrder(release);
        for (const t of changes.keys())
          if (!types.includes(t))
            throw new Conflict(`v${release.version} of ${app} has no process type "${t}"`, {
              app,
              type: t,
            });
      }
      for (const [t, n] of changes) this.deps.state.apps.setFormation(app, t, n);
      if (release !== null) {
        const formation = this.deps.state.apps.formation(app);
        for (const s of await this.services(app)) {
          const type = s.Spec.Labels?.[LABEL.type];
          if (type === undefined || !changes.has(type as ProcessType)) continue;
          const replicas = wanted(formation, type);
          // Replicas only: Swarm starts or stops the difference, no rolling update.
          const full = await this.deps.engine.call<Service & { Spec: Record<string, unknown> }>(
            'GET',
            `/services/${s.ID}`,
          );
          const spec = { ...full.Spec, Mode: { Replicated: { Replicas: replicas } } };
          await this.deps.engine.call(
            'POST',
            `/services/${s.ID}/update?version=${full.Version.Index}`,
            spec,
            this.auth,
          );
          await this.settle(
            s.Spec.Name,
            release.version,
            replicas,
            type === 'web' ? webProbe(release) : null,
          );
          if (type === 'web') await this.followApp(app);
        }
      }
      return this.deps.state.apps.formation(app);
    } finally {
      unlock();
    }
  }

  async processes(app: AppName): Promise<ScheduledProcess[]> {
    const out: ScheduledProcess[] = [];
    for (const s of await this.services(app)) {
      const type = s.Spec.Labels?.[LABEL.type] ?? '?';
      if (s.Spec.Name !== serviceName(app, type)) continue; // a one-off `run`
      for (const t of await this.tasks(s.Spec.Name, true)) {
        const version = Number((t.Spec.ContainerSpec?.Labels?.[LABEL.release] ?? 'v0').slice(1));
        out.push({
          type,
          n: t.Slot ?? 0,
          version,
          state: taskState(t.Status.State),
          id: t.ID,
          address:
            type === 'web' && t.Status.State === 'running' && (await this.answers(t))
              ? await this.address(t)
              : null,
        });
      }
    }
    return out.sort((a, b) => a.type.localeCompare(b.type) || a.n - b.n || a.version - b.version);
  }

  async logs(app: AppName, lines: number): Promise<ProcessLogLine[]> {
    const all: { ts: string; line: ProcessLogLine }[] = [];
    for (const s of await this.services(app)) {
      const type = s.Spec.Labels?.[LABEL.type] ?? '?';
      const slots = new Map((await this.tasks(s.Spec.Name, false)).map((t) => [t.ID, t.Slot ?? 0]));
      const buf = await this.deps.engine.raw(
        'GET',
        `/services/${s.ID}/logs?stdout=1&stderr=1&timestamps=1&details=1&tail=${lines}`,
      );
      for (const f of demux(buf))
        for (const raw of f.data.toString('utf8').split('\n')) {
          const m = LOG_LINE.exec(raw);
          if (m === null) continue;
          all.push({ ts: m[1]!, line: { ps: `${type}.${slots.get(m[3]!) ?? 0}`, text: m[4]! } });
        }
    }
    return all
      .sort((a, b) => a.ts.localeCompare(b.ts))
      .slice(-lines)
      .map((x) => x.line);
  }

  async run(release: Release, command: readonly string[], io: RunIO): Promise<number> {
    const image = await this.deps.store.resolveImage(release.image);
    const name = `${release.app}_run_${randomBytes(3).toString('hex')}`;
    const spec = this.spec(release, 'run', command, 1, image.config.Env, null);
    // A replicated job: one task that runs to completion, never restarted (API v1.41).
    Object.assign(spec, {
      Name: name,
      Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
      UpdateConfig: undefined,
      RollbackConfig: undefined,
    });
    (spec.TaskTemplate as Record<string, unknown>).RestartPolicy = { Condition: 'none' };
    const created = await this.deps.engine.call<{ ID: string }>(
      'POST',
      '/services/create',
      spec,
      this.auth,
    );
    try {
      for (;;) {
        if (io.signal.aborted) return 137;
        const [t] = await this.tasks(name, false);
        if (t !== undefined && (t.Status.State === 'complete' || FAILED_TASK.has(t.Status.State))) {
          const buf = await this.deps.engine.raw(
            'GET',
            `/services/${created.ID}/logs?stdout=1&stderr=1`,
          );
          for (const f of demux(buf)) io.onData(f.stream, f.data);
          if (t.Status.ContainerStatus?.ExitCode === undefined)
            throw new DeployFailed(
              `one-off task ${t.Status.State}: ${t.Status.Err ?? 'no reason given'}`,
              { step: 'run' },
            );
          return t.Status.ContainerStatus.ExitCode;
        }
        await sleep(250);
      }
    } finally {
      await this.deps.engine.call('DELETE', `/services/${created.ID}`).catch(() => undefined);
    }
  }

  async destroy(app: AppName): Promise<void> {
    // Out of the route and drained first, while the tasks still serve (their stop is held).
    this.destroying.add(app);
    try {
      // In the follower's queue: a pass already under way finishes first, later ones skip.
      await this.enqueue(async () => {
        await this.deps.router?.switch(app, []);
        this.routed.delete(app);
      });
      for (const s of await this.services(app)) {
        await this.deps.engine.call('DELETE', `/services/${s.ID}`);
        this.logSince.delete(s.ID);
      }
      await this.reap(app);
    } finally {
      this.destroying.delete(app);
    }
  }

  /** Waits for the app's containers on this node to go, sending SIGTERM to the held ones. */
  private async reap(app: AppName): Promise<void> {
    const running = await this.deps.engine.call<{ Id: string }[]>(
      'GET',
      `/containers/json?filters=${q({ label: [`${LABEL.app}=${app}`] })}`,
    );
    for (const c of running)
      await this.deps.engine
        .call('POST', `/containers/${c.Id}/kill?signal=SIGTERM`)
        .catch(() => undefined);
    const deadline = Date.now() + (this.deps.startTimeoutMs ?? 120_000);
    // The tasks' containers stop shortly after their service goes; wait for that, so a new
    // app of the same name never meets them (exited ones are Swarm's to reap).
    while (Date.now() < deadline) {
      const left = await this.deps.engine.call<unknown[]>(
        'GET',
        `/containers/json?filters=${q({ label: [`${LABEL.app}=${app}`] })}`,
      );
      if (left.length === 0) return;
      await sleep(250);
    }
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private spec(
    release: Release,
    type: string,
    command: readonly string[],
    replicas: number,
    imageEnv: readonly string[] | undefined,
    port: number | null,
  ): Record<string, unknown> {
    const web = type === 'web' && port !== null;
    return serviceSpec({
      release,
      type,
      command,
      image: `${this.registry}/${release.image}`,
      env: processEnv(imageEnv, release, type, port ?? undefined),
      replicas,
      limits: resourcesFor(this.deps, release.app, type).limits,
      port: web ? port : null,
      // Drained by the router before it stops: only when a router follows the tasks.
      holdStop: web && this.deps.router !== undefined,
      stopGraceMs: stopGraceMs(this.deps, release),
      monitorMs: this.deps.monitorMs ?? 5000,
    });
  }

  private services(app: string): Promise<Service[]> {
    return this.deps.engine.call<Service[]>(
      'GET',
      `/services?filters=${q({ label: [`${LABEL.app}=${app}`] })}`,
    );
  }

  private tasks(service: string, running: boolean): Promise<Task[]> {
    const f: Record<string, string[]> = { service: [service] };
    if (running) f['desired-state'] = ['running'];
    return this.deps.engine.call<Task[]>('GET', `/tasks?filters=${q(f)}`);
  }

  /** Where the router reaches a web task: its node's address and its published port. */
  private async address(t: Task): Promise<{ host: string; port: number } | null> {
    const port = t.Status.PortStatus?.Ports?.[0]?.PublishedPort;
    if (port === undefined || t.NodeID === undefined) return null;
    let host = this.nodes.get(t.NodeID);
    if (host === undefined) {
      const n = await this.deps.engine.call<{
        Status?: { Addr?: string };
        ManagerStatus?: { Addr?: string };
      }>('GET', `/nodes/${t.NodeID}`);
      host = n.Status?.Addr ?? '';
      // A manager may report 0.0.0.0; its advertised manager address is the reachable one.
      if (host === '' || host === '0.0.0.0')
        host = (n.ManagerStatus?.Addr ?? '').split(':')[0] ?? '';
      this.nodes.set(t.NodeID, host);
    }
    return host === '' ? null : { host, port };
  }

  /**
   * Waits until the service runs exactly `replicas` tasks of `version` (web ones accepting
   * TCP at their address) with its update complete; throws when Swarm rolled it back, when
   * its new tasks keep failing, or at the deadline.
   */
  private async settle(
    name: string,
    version: number,
    replicas: number,
    probe: Probe | null,
  ): Promise<void> {
    const deadline = Date.now() + (this.deps.startTimeoutMs ?? 120_000);
    const label = `v${version}`;
    let failures = 0;
    for (;;) {
      const s = await this.deps.engine.call<Service>('GET', `/services/${name}`);
      const us = s.UpdateStatus?.State;
      const all = await this.tasks(name, false);
      const mine = all.filter((t) => t.Spec.ContainerSpec?.Labels?.[LABEL.release] === label);
      const failed = mine.filter((t) => FAILED_TASK.has(t.Status.State));
      const why = failed[0]?.Status.Err ?? (failed[0] ? `task ${failed[0].Status.State}` : '');
      if (us !== undefined && ROLLED_BACK.has(us))
        throw new DeployFailed(
          `${name}: Swarm rolled the update back: ${s.UpdateStatus?.Message ?? us}${why ? ` (${why})` : ''}`,
          { step: 'check' },
        );
      if (us === undefined && failed.length >= 3)
        throw new DeployFailed(`${name}: new tasks keep failing (${why})`, { step: 'check' });
      const running = all.filter((t) => t.DesiredState === 'running');
      const ready = running.filter(
        (t) =>
          t.Spec.ContainerSpec?.Labels?.[LABEL.release] === label && t.Status.State === 'running',
      );
      if (
        running.length === replicas &&
        ready.length === replicas &&
        (us === undefined || us === 'completed')
      ) {
        if (probe === null) return;
        const ok = await Promise.all(
          ready.map(async (t) => {
            const a = await this.address(t);
            return a !== null && (await probe.check(a.host, a.port));
          }),
        );
        if (ok.every(Boolean)) {
          for (const t of ready) this.checked.add(t.ID);
          return;
        }
        if (++failures >= probe.attempts)
          throw new DeployFailed(
            `${name}: ${ok.filter((x) => !x).length} of ${replicas} tasks of ${label} failed the release's checks ${failures} times`,
            { step: 'check' },
          );
        await sleep(probe.waitMs);
      }
      if (Date.now() > deadline)
        throw new DeployFailed(
          `${name}: ${ready.length} of ${replicas} tasks of ${label} running after ${Math.round((this.deps.startTimeoutMs ?? 120_000) / 1000)} s${why ? ` (${why})` : ''}`,
          { step: 'check' },
        );
      await sleep(250);
    }
  }

  private async untilAnswering(name: string, deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const running = (await this.tasks(name, true)).filter((t) => t.Status.State === 'running');
      const ok = await Promise.all(
        running.map(async (t) => {
          const a = await this.address(t);
          return a !== null && (await answersHttp(a.host, a.port));
        }),
      );
      if (running.length > 0 && ok.every(Boolean)) return;
      await sleep(250);
    }
  }

  /** Puts back what a failed deploy changed: created services go, updated ones roll back. */
  private async undo(changed: { name: string; created: boolean }[]): Promise<void> {
    for (const c of changed.reverse()) {
      try {
        const s = await this.deps.engine.call<Service & { Spec: Record<string, unknown> }>(
          'GET',
          `/services/${c.name}`,
        );
        if (c.created) {
          await this.deps.engine.call('DELETE', `/services/${s.ID}`);
          continue;
        }
        // Swarm already undoes a failed update by itself; roll back only one that completed.
        if (s.UpdateStatus?.State === 'completed')
          await this.deps.engine.call(
            'POST',
            `/services/${s.ID}/update?version=${s.Version.Index}&rollback=previous`,
            s.Spec,
            this.auth,
          );
        const deadline = Date.now() + (this.deps.startTimeoutMs ?? 120_000);
        while (Date.now() < deadline) {
          const now = await this.deps.engine.call<Service>('GET', `/services/${c.name}`);
          const st = now.UpdateStatus?.State;
          if (st === 'rollback_completed' || st === 'rollback_paused' || st === 'paused') break;
          await sleep(250);
        }
        // The tasks Swarm brought back serve before the deploy reports its failure.
        if (c.name.endsWith('_web')) await this.untilAnswering(c.name, deadline);
      } catch {
        // Best effort: the deploy fails either way, and says so.
      }
    }
  }
}

function taskState(s: string): ScheduledProcess['state'] {
  if (s === 'running') return 'running';
  if (['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting'].includes(s))
    return 'starting';
  if (s === 'shutdown' || s === 'complete' || s === 'remove') return 'stopping';
  return 'crashed';
}

interface Probe {
  check: (host: string, port: number) => Promise<boolean>;
  /** Failed rounds, once every task runs, before the deploy fails (app.json `attempts`). */
  attempts: number;
  waitMs: number;
}

/**
 * How paas checks a new web task: the release's app.json `healthchecks.web` path checks
 * (status below 400, and the content when given), as on one box; without any, that it
 * answers HTTP. The image's HEALTHCHECK needs nothing here: the engine runs it and a task
 * counts as running only once healthy.
 */
function webProbe(release: Release, r?: Reporter): Probe {
  const checks = parseAppJsonChecks(release.appJson.healthchecks, 'web') ?? [];
  const paths = checks.flatMap((c) => (c.probe.kind === 'http' ? [c.probe] : []));
  if (paths.length < checks.length)
    r?.info('app.json healthchecks.web: only path checks run on Swarm yet; the others are skipped');
  // Without a path check the deadline bounds the wait, as the default check's does on one box.
  if (paths.length === 0) return { check: answersHttp, attempts: Infinity, waitMs: 250 };
  return {
    attempts: Math.max(...checks.map((c) => c.attempts)),
    waitMs: Math.max(250, ...checks.map((c) => c.waitMs)),
    check: async (host, port) => {
      for (const p of paths) {
        const got = await get(host, p.port ?? port, p.path);
        if (got === null || got.status >= 400) return false;
        if (p.content !== undefined && !got.body.includes(p.content)) return false;
      }
      return true;
    },
  };
}

function get(
  host: string,
  port: number,
  path: string,
): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 65536) body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/**
 * The default check of a web task: it answers HTTP at its address, whatever the status. Not
 * "the port accepts", as on one box: the node's port proxy (docker-proxy) accepts every
 * connection before the process listens, and closes it afterwards.
 */
function answersHttp(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const LOG_LINE = /^(\S+) (\S*com\.docker\.swarm\.task\.id=([a-z0-9]+)\S*) (.*)$/;

/** An RFC 3339 timestamp with nanoseconds (the engine's) as ns since the epoch. */
function nsOf(ts: string): bigint | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (m === null) return null;
  const s = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(s)) return null;
  return BigInt(s) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

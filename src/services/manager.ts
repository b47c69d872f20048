// Running backing services: each is one container of our runtime (no network: it serves a
// Unix socket, see kinds.ts) with its data on a volume, watched like an app process — an exit
// that nobody asked for restarts it after the same backoff app processes get — and found
// again by its label when the daemon restarts (containers outlive the daemon).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppName, Db } from '../apps/index.ts';
import type { ServiceImage } from '../baseimages/index.ts';
import { HealthCheckFailed, ImageNotFound, RuntimeError, ServiceExists } from '../errors/index.ts';
import { formatImageRef, type Image, type ImageRef, type ImageStore } from '../registry/index.ts';
import {
  exitOf,
  type ContainerInfo,
  type ProcessResult,
  type Runtime,
  type Volume,
} from '../runtime/index.ts';
import { KINDS, linkDir } from './kinds.ts';
import { serviceDir, ServiceStore, type Link, type Service } from './store.ts';
import type { ServiceName, ServiceType } from './validate.ts';

export const SERVICE_LABEL = 'paas.service';
/** Heroku's standard dyno memory, as app processes get by default. */
const SERVICE_MEMORY = 512 * 1024 * 1024;
const HEALTH_TIMEOUT_MS = 90_000;
/** A service that stayed up this long starts its crash count afresh (as app processes do). */
const STABLE_MS = 30_000;

export interface ServiceDeps {
  dataDir: string;
  db: Db;
  runtime: Runtime;
  store: ImageStore;
  /** Builds postgres:15 / redis:7 from Debian's packages when the store lacks them. */
  buildImage?: (kind: ServiceImage, say: (line: string) => void) => Promise<string>;
  /** Delay before restart number n: the app processes' backoff (deploy's backoffMs). */
  backoff: (crashes: number) => number;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

export interface ServiceStatus {
  service: Service;
  container: ContainerInfo | null;
  links: Link[];
  restarts: number;
}

interface Watch {
  id: string;
  abort: AbortController;
  restarts: number;
  crashes: number;
}

export class ServiceManager {
  readonly services: ServiceStore;
  private readonly deps: ServiceDeps;
  private readonly watches = new Map<string, Watch>();
  /** Names being restarted, restored or destroyed on purpose: their exits are expected. */
  private readonly busy = new Set<string>();
  private stopped = false;

  constructor(deps: ServiceDeps) {
    this.deps = deps;
    this.services = new ServiceStore(deps.db);
  }

  private dirs(name: ServiceName): { data: string; run: string } {
    const root = serviceDir(this.deps.dataDir, name);
    return { data: join(root, 'data'), run: join(root, 'run') };
  }

  /**
   * Creates, starts and health-checks a service; on failure nothing of it is left. `image`
   * (`--image`): an image with the official image's interface, from the store or pulled from
   * its registry; without it, the base image provision/base-images builds.
   */
  async create(
    type: ServiceType,
    name: ServiceName,
    say: (l: string) => void,
    image?: ImageRef,
  ): Promise<Service> {
    if (this.services.find(name) !== null)
      throw new ServiceExists(`service "${name}" already exists`, { service: name });
    let ref = KINDS[type].image;
    if (image === undefined) await this.ensureImage(type, say);
    else {
      ref = formatImageRef(image);
      await this.deps.store.ensureImage(image, { onProgress: say });
    }
    const svc = this.services.create(name, type, ref);
    try {
      mkdirSync(join(this.deps.dataDir, 'services'), { recursive: true, mode: 0o700 });
      const d = this.dirs(name);
      // Empty and root's: the runtime hands both to the image's user on first start.
      mkdirSync(d.data, { recursive: true, mode: 0o755 });
      mkdirSync(d.run, { recursive: true, mode: 0o755 });
      say(`starting ${type} service ${name} (${ref})`);
      await this.start(svc);
      await this.waitHealthy(svc);
      say(`${name} is ready`);
      return svc;
    } catch (e) {
      await this.removeContainers(name);
      this.services.delete(name);
      rmSync(serviceDir(this.deps.dataDir, name), { recursive: true, force: true });
      throw e;
    }
  }

  private async ensureImage(type: ServiceType, say: (l: string) => void): Promise<void> {
    const ref = KINDS[type].image;
    try {
      await this.deps.store.resolveImage(ref);
      return;
    } catch (e) {
      if (!(e instanceof ImageNotFound) || this.deps.buildImage === undefined) throw e;
    }
    say(`${ref} is not built on this box yet: building it from Debian's packages (minutes, once)`);
    await this.deps.buildImage(type, say);
  }

  async containers(name: string): Promise<ContainerInfo[]> {
    return (await this.deps.runtime.list()).filter((c) => c.labels[SERVICE_LABEL] === name);
  }

  private async running(name: ServiceName): Promise<ContainerInfo> {
    const c = (await this.containers(name)).find((x) => x.state === 'running');
    if (c === undefined)
      throw new RuntimeError(`service "${name}" is not running (it restarts on its own)`, {
        service: name,
      });
    return c;
  }

  private async env(svc: Service, image?: Image): Promise<Record<string, string>> {
    const img = image ?? (await this.deps.store.resolveImage(svc.image));
    const env: Record<string, string> = {};
    for (const kv of img.config.Env ?? []) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    const kind = KINDS[svc.type];
    return {
      ...env,
      ...(official(img) ? kind.official.env(svc.password) : kind.env(svc.password)),
    };
  }

  /**
   * How the container runs: an image with an ENTRYPOINT is an official-interface image
   * (`--image`, kinds.ts's Official) run through it as its own user; our base images have
   * none and get our start script. Decided by the image, so `--image postgres:15` on a box
   * whose postgres:15 is the base image still runs it right.
   */
  private plan(svc: Service, image: Image): { command: string[]; user?: string; conf: Volume[] } {
    const kind = KINDS[svc.type];
    if (!official(image)) return { command: kind.command, user: image.config.User, conf: [] };
    const o = kind.official;
    const conf: Volume[] = [];
    if (o.conf !== undefined) {
      // In the service's directory (root's, 0700 above it): only its container reads it.
      const dir = join(serviceDir(this.deps.dataDir, svc.name), 'conf');
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeFileSync(join(dir, o.conf.file), o.conf.text(svc.password), { mode: 0o644 });
      conf.push({ source: dir, target: o.conf.dir, readonly: true });
    }
    return { command: [...(image.config.Entrypoint ?? []), ...o.args], user: o.user, conf };
  }

  /** Starts a fresh container of the service and watches it. */
  private async start(svc: Service, history = { restarts: 0, crashes: 0 }): Promise<void> {
    const kind = KINDS[svc.type];
    const image = await this.deps.store.resolveImage(svc.image);
    const plan = this.plan(svc, image);
    const d = this.dirs(svc.name);
    // What a previous container left in the socket dir (socket, lock file) is stale now.
    for (const f of readdirSync(d.run)) rmSync(join(d.run, f), { force: true, recursive: true });
    const volumes: Volume[] = [
      { source: d.data, target: kind.dataDir, initOwner: true },
      { source: d.run, target: kind.runDir, initOwner: true },
      ...plan.conf,
    ];
    const created = await this.deps.runtime.create({
      id: `svc.${svc.name}.${randomBytes(3).toString('hex')}`,
      rootfs: { lowers: await this.deps.store.layerDirs(image) },
      command: plan.command,
      env: await this.env(svc, image),
      cwd: image.config.WorkingDir || '/',
      user: plan.user,
      hostname: svc.name,
      net: 'none',
      limits: { memoryBytes: SERVICE_MEMORY, pids: 4096 },
      volumes,
      stopSignal: image.config.StopSignal ?? 'SIGTERM',
      labels: { [SERVICE_LABEL]: svc.name, 'paas.service.type': svc.type },
    });
    try {
      await this.deps.runtime.start(created.id);
    } catch (e) {
      await this.deps.runtime.remove(created.id, { force: true }).catch(() => undefined);
      throw e;
    }
    this.watch(svc.name, created.id, history);
  }

  private watch(name: ServiceName, id: string, history: { restarts: number; crashes: number }) {
    const w = this.newWatch(name, id, history);
    const upSince = Date.now();
    void exitOf(this.deps.runtime, id, {
      signal: w.abort.signal,
      keepWaiting: () => !this.dropped(name, w),
    })
      .then(async (exit) => {
        if (exit === null || this.dropped(name, w)) return;
        const svc = this.services.find(name);
        if (svc === null) return;
        const crashes = Date.now() - upSince > STABLE_MS ? 1 : w.crashes + 1;
        const delayMs = this.deps.backoff(crashes);
        this.deps.log('service exited; restarting', {
          service: name,
          exitCode: exit.exitCode,
          signal: exit.signal,
          delayMs,
        });
        await this.startAgain(svc, w, crashes, delayMs);
      })
      .catch((e: unknown) => {
        if (!w.abort.signal.aborted)
          this.deps.log('service watch failed', { service: name, err: String(e) });
      });
  }

  /** The service's watch from now on (ending the one before): its container and history. */
  private newWatch(name: ServiceName, id: string, history: { restarts: number; crashes: number }) {
    this.watches.get(name)?.abort.abort();
    const w: Watch = { id, abort: new AbortController(), ...history };
    this.watches.set(name, w);
    return w;
  }

  /** Whether `w` no longer decides for the service: stopped, replaced, or busy on purpose. */
  private dropped(name: ServiceName, w: Watch): boolean {
    return this.stopped || w.abort.signal.aborted || this.busy.has(name);
  }

  /**
   * Starts a fresh container after `delayMs` in place of `w.id` (if any). A start that fails
   * (the runtime could not make the container) is tried again after the next backoff, as an
   * app process's failed restart is: a database stays down only while its container cannot be
   * made, not until the daemon restarts. Ends when a start succeeds or `w` is dropped.
   */
  private async startAgain(svc: Service, w: Watch, crashes: number, delayMs: number) {
    for (;;) {
      await sleep(delayMs);
      if (this.dropped(svc.name, w)) return;
      if (w.id !== '') await this.deps.runtime.remove(w.id, { force: true }).catch(() => undefined);
      try {
        await this.start(svc, { restarts: w.restarts + 1, crashes });
        return;
      } catch (e) {
        delayMs = this.deps.backoff(++crashes);
        this.deps.log('service did not start; retrying', {
          service: svc.name,
          err: String(e),
          delayMs,
        });
      }
    }
  }

  /** Exits 0 from the type's check, bounded by HEALTH_TIMEOUT_MS. */
  async waitHealthy(svc: Service): Promise<void> {
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let last = '';
    while (Date.now() < deadline) {
      const c = (await this.containers(svc.name)).find((x) => x.state === 'running');
      if (c !== undefined) {
        const r = await this.deps.runtime
          .exec(c.id, { command: KINDS[svc.type].health(svc.password), stdio: 'pipe' })
          .catch((e: unknown) => ({ exitCode: -1, stderr: String(e) }) as ProcessResult);
        if (r.exitCode === 0) return;
        last = r.stderr.trim();
      }
      await sleep(300);
    }
    throw new HealthCheckFailed(
      `service "${svc.name}" did not become ready in ${HEALTH_TIMEOUT_MS / 1000}s${last === '' ? '' : `: ${last}`}`,
      { service: svc.name },
    );
  }

  /**
   * At daemon start: watch each service's running container (kept across a daemon restart,
   * kill -9 included), start the ones that are not running, remove containers of services
   * that no longer exist.
   */
  async adoptAll(): Promise<{ adopted: number; started: number }> {
    const out = { adopted: 0, started: 0 };
    const names = new Set(this.services.list().map((s) => s.name as string));
    for (const c of await this.deps.runtime.list()) {
      const name = c.labels[SERVICE_LABEL];
      if (name === undefined) continue;
      if (!names.has(name) || c.state !== 'running')
        await this.deps.runtime.remove(c.id, { force: true }).catch(() => undefined);
    }
    for (const svc of this.services.list()) {
      const c = (await this.containers(svc.name)).find((x) => x.state === 'running');
      if (c !== undefined) {
        this.watch(svc.name, c.id, { restarts: 0, crashes: 0 });
        out.adopted++;
        continue;
      }
      try {
        await this.start(svc);
        out.started++;
      } catch (e) {
        // Tried again with backoff, as after a crash; `services:info` shows it down meanwhile.
        const delayMs = this.deps.backoff(1);
        this.deps.log('service did not start; retrying', {
          service: svc.name,
          err: String(e),
          delayMs,
        });
        const w = this.newWatch(svc.name, '', { restarts: 0, crashes: 1 });
        void this.startAgain(svc, w, 1, delayMs);
      }
    }
    return out;
  }

  /** Stops the service's container, runs `between` while it is down, starts a fresh one. */
  async restart(name: ServiceName, between?: () => Promise<void>): Promise<void> {
    const svc = this.services.get(name);
    this.busy.add(name);
    try {
      this.watches.get(name)?.abort.abort();
      this.watches.delete(name);
      await this.removeContainers(name);
      await between?.();
      await this.start(svc);
    } finally {
      this.busy.delete(name);
    }
    await this.waitHealthy(svc);
  }

  private async removeContainers(name: string): Promise<void> {
    for (const c of await this.containers(name)) {
      if (c.state === 'running')
        await this.deps.runtime.stop(c.id, { graceMs: 30_000 }).catch(() => undefined);
      await this.deps.runtime.remove(c.id, { force: true }).catch(() => undefined);
    }
  }

  /** Refused while linked (ServiceStore.delete); the data goes with it. */
  async destroy(name: ServiceName): Promise<void> {
    this.busy.add(name);
    try {
      this.services.delete(name);
      this.watches.get(name)?.abort.abort();
      this.watches.delete(name);
      await this.removeContainers(name);
      rmSync(serviceDir(this.deps.dataDir, name), { recursive: true, force: true });
    } finally {
      this.busy.delete(name);
    }
  }

  async status(name: ServiceName): Promise<ServiceStatus> {
    const service = this.services.get(name);
    const cs = await this.containers(name);
    return {
      service,
      container: cs.find((c) => c.state === 'running') ?? cs[0] ?? null,
      links: this.services.links(name),
      restarts: this.watches.get(name)?.restarts ?? 0,
    };
  }

  /** The config var a link sets: `<alias>_URL` and the URL through the socket's mount. */
  linkVar(svc: Service, alias: string): { key: string; value: string } {
    return { key: `${alias}_URL`, value: KINDS[svc.type].url(svc.password, linkDir(svc.name)) };
  }

  /** A command in the service's running container, with its environment. */
  async exec(name: ServiceName, command: string[], stdin?: Buffer): Promise<ProcessResult> {
    const svc = this.services.get(name);
    const c = await this.running(name);
    return this.deps.runtime.exec(c.id, {
      command,
      env: await this.env(svc),
      stdio: 'pipe',
      ...(stdin === undefined ? {} : { stdin }),
    });
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watches.values()) w.abort.abort();
    this.watches.clear();
  }

  /** The service's host directories (backups read the redis RDB from there). */
  hostDirs(name: ServiceName): { data: string; run: string } {
    return this.dirs(name);
  }
}

/** Official images start through their ENTRYPOINT; our base images have none. */
function official(image: Image): boolean {
  return (image.config.Entrypoint ?? []).length > 0;
}

/**
 * The runtime volumes an app's processes start with for its links: each linked service's
 * socket directory, read-only (connecting to a socket needs no write access), at
 * /run/paas-services/<name>. No link, no mount: that is what keeps other apps out.
 */
export function linkVolumes(db: Db, dataDir: string, app: AppName): Volume[] {
  return new ServiceStore(db).linksOf(app).map((l) => ({
    source: join(serviceDir(dataDir, l.service), 'run'),
    target: linkDir(l.service),
    readonly: true,
  }));
}

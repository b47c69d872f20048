// What both backends share: bundle directories, user resolution, cgroups, network, state
// and exit files, stop/wait/kill, stats, list and cleanup. A backend supplies only how a
// container is launched, signalled, exec'd into and torn down (see BackendOps).
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContainerNotFound,
  InvalidArgument,
  InvalidSpec,
  RuntimeError,
  Unsupported,
  WaitTimeout,
} from '../errors/index.ts';
import {
  files,
  isAlive,
  readJson,
  writableDirs,
  type Meta,
  type ShimExit,
  type ShimState,
} from './bundle.ts';
import { writeFileWhole } from '../files/index.ts';
import { Cgroup } from './cgroups.ts';
import { Network, writeNetFiles } from './network.ts';
import { isContainerId, parseSpec, SIGNALS, type NormalizedSpec } from './spec.ts';
import { resolveUser } from './users.ts';
import type {
  ContainerInfo,
  RuntimeFeatures,
  ContainerSpec,
  ExecOptions,
  ExitStatus,
  ProcessResult,
  RunOptions,
  Runtime,
  RuntimeName,
  RuntimeOptions,
  Stats,
  TerminalSize,
} from './types.ts';

export const SIGNAL_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(SIGNALS).map(([k, v]) => [v, k]),
);

export function signalNumber(sig: string): number {
  const name = sig.startsWith('SIG') ? sig : `SIG${sig}`;
  const n = SIGNALS[name];
  if (n === undefined)
    throw new InvalidSpec(`signal: "${sig}" is not one of ${Object.keys(SIGNALS).join(', ')}`, {
      field: 'signal',
    });
  return n;
}

/** Per generation of a container's log file: a chatty app's disk use stays bounded. */
export const DEFAULT_LOG_MAX_BYTES = 8 * 1024 * 1024;

/** How long inspect and list wait for a live shim to write the status of an init that ended. */
const EXIT_SETTLE_MS = 5_000;

/** A terminal size the shim takes (SPEC.md `tty`). */
export function validSize(s: TerminalSize): boolean {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  return ok(s.rows) && ok(s.cols);
}

/** Read through a call: TypeScript would keep an earlier check's narrowing of `aborted`. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export abstract class BundleRuntime implements Runtime {
  abstract readonly name: RuntimeName;
  abstract readonly features: RuntimeFeatures;
  readonly dataDir: string;
  readonly containersDir: string;
  readonly cgroupParent: string;
  protected readonly opts: RuntimeOptions;
  private network: Network | null = null;

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.dataDir = opts.dataDir;
    this.containersDir = join(opts.dataDir, 'containers');
    this.cgroupParent = opts.cgroupParent ?? 'paas';
    mkdirSync(this.containersDir, { recursive: true });
  }

  /** Writes the backend's own config into the bundle (native spec file, runc config.json). */
  protected abstract prepare(bundle: string, meta: Meta): Promise<void>;
  /** Starts the container detached; the shim writes `state`. */
  protected abstract launch(bundle: string, meta: Meta): Promise<void>;
  /** Runs the created container in the foreground. */
  protected abstract foreground(
    bundle: string,
    meta: Meta,
    opts: RunOptions,
  ): Promise<ProcessResult>;
  protected abstract signal(
    bundle: string,
    meta: Meta,
    state: ShimState,
    sig: number,
  ): Promise<void>;
  protected abstract execIn(
    bundle: string,
    meta: Meta,
    state: ShimState,
    opts: ExecOptions,
    user: { uid: number; gid: number; groups: number[] },
  ): Promise<ProcessResult>;
  /** Backend teardown after the container is gone (unmounts, runc delete). */
  protected abstract teardown(bundle: string, meta: Meta): Promise<void>;

  protected bundle(id: string): string {
    if (!isContainerId(id)) throw new ContainerNotFound(`no container "${id}"`, { id });
    return join(this.containersDir, id);
  }

  protected meta(id: string): { bundle: string; meta: Meta } {
    const bundle = this.bundle(id);
    const meta = readJson<Meta>(files.meta(bundle));
    if (meta === null) throw new ContainerNotFound(`no container "${id}"`, { id });
    return { bundle, meta };
  }

  protected net(): Network {
    this.network ??= new Network({
      stateDir: this.opts.networkStateDir,
      bridge: this.opts.bridge,
      subnet: this.opts.subnet,
    });
    return this.network;
  }

  protected layers(meta: Meta): string[] {
    const r = meta.spec.rootfs;
    return 'dir' in r ? [r.dir] : r.lowers;
  }

  async create(input: ContainerSpec): Promise<ContainerInfo> {
    const spec = parseSpec(input);
    const bundle = this.bundle(spec.id);
    try {
      mkdirSync(bundle);
    } catch {
      throw new InvalidSpec(`id: container "${spec.id}" already exists`, { field: 'id' });
    }
    const cgroup = new Cgroup(join(this.cgroupParent, spec.id));
    let attached = false;
    try {
      const user = await resolveUser(
        'dir' in spec.rootfs ? [spec.rootfs.dir] : spec.rootfs.lowers,
        spec.user,
      );
      initVolumeOwners(spec, user);
      mkdirSync(files.rootfs(bundle));
      if ('lowers' in spec.rootfs && !spec.readonly && spec.rootfs.upper === undefined) {
        const w = writableDirs(bundle, spec);
        mkdirSync(w.upper);
        mkdirSync(w.work);
      }
      cgroup.create(spec.limits);
      let ip: string | null = null;
      let netnsPath: string | null = null;
      if (spec.net === 'bridge') {
        attached = true;
        await this.net().ensureBridge();
        const a = await this.net().attach(spec.id);
        ip = a.ip;
        netnsPath = a.netnsPath;
      }
      writeNetFiles(bundle, spec.hostname, ip);
      // native/SPEC.md `log-max`: the shim keeps the log to two generations of this size.
      writeFileSync(files.logMax(bundle), `${this.opts.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES}\n`);
      const meta: Meta = {
        id: spec.id,
        runtime: this.name,
        spec,
        uid: user.uid,
        gid: user.gid,
        groups: user.groups,
        ip,
        netnsPath,
        cgroup: cgroup.relPath,
        createdAt: new Date().toISOString(),
        startedAt: null,
      };
      if (spec.env.HOME === undefined) spec.env.HOME = user.home || '/';
      await this.prepare(bundle, meta);
      writeFileWhole(files.meta(bundle), JSON.stringify(meta, null, 2));
      return this.info(bundle, meta);
    } catch (e) {
      if (attached)
        await this.net()
          .detach(spec.id)
          .catch(() => undefined);
      await cgroup.remove().catch(() => undefined);
      rmSync(bundle, { recursive: true, force: true });
      throw e;
    }
  }

  async start(id: string): Promise<ContainerInfo> {
    const { bundle, meta } = this.meta(id);
    if (existsSync(files.state(bundle)))
      throw new RuntimeError(`container "${id}" was already started`, { id });
    meta.startedAt = new Date().toISOString();
    writeFileWhole(files.meta(bundle), JSON.stringify(meta, null, 2));
    await this.launch(bundle, meta);
    return this.info(bundle, meta);
  }

  async run(spec: ContainerSpec, opts: RunOptions = {}): Promise<ProcessResult> {
    if (opts.tty !== undefined) {
      if (!this.features.tty)
        throw new Unsupported(
          `runtime ${this.name}: a terminal (tty) is only available with the native runtime`,
        );
      if (opts.stdio === 'inherit') throw new InvalidArgument('tty: only with piped stdio');
      if (!validSize(opts.tty))
        throw new InvalidArgument(
          `tty: rows and cols must be integers from 1 to 65535, not ${opts.tty.rows}x${opts.tty.cols}`,
          { field: 'tty' },
        );
    }
    if (opts.signal?.aborted === true) throw new RuntimeError('run: aborted before it started');
    const info = await this.create(spec);
    const { bundle, meta } = this.meta(info.id);
    try {
      const res = await this.foreground(bundle, meta, opts);
      const cg = new Cgroup(meta.cgroup);
      // runc's own child cgroup, where v1 counts the OOM kill, is gone by now: a command
      // SIGKILLed by someone other than us, in a cgroup whose usage reached its limit, was
      // the OOM killer's victim.
      const sigkilled = !aborted(opts.signal) && (res.signal === 'SIGKILL' || res.exitCode === 137);
      return {
        ...res,
        limitsHit: {
          memory: cg.oomKilled() || (sigkilled && cg.stats().oomKills > 0),
          pids: cg.pidsLimitReached(),
        },
      };
    } finally {
      await this.remove(info.id, { force: true });
    }
  }

  protected exitStatus(bundle: string, meta: Meta): ExitStatus | null {
    const exit = readJson<ShimExit>(files.exit(bundle));
    if (exit === null) return null;
    const sig = this.exitSignal(exit);
    const oomKilled = sig === 9 && new Cgroup(meta.cgroup).stats().oomKills > 0;
    return {
      exitCode: exit.exitCode,
      signal: sig === null ? null : (SIGNAL_NAMES[sig] ?? `SIG${sig}`),
      oomKilled,
      finishedAt: exit.at,
    };
  }

  /** The signal that ended the container, as its shim recorded it. */
  protected exitSignal(exit: ShimExit): number | null {
    return exit.signal ?? null;
  }

  protected info(bundle: string, meta: Meta): ContainerInfo {
    const state = readJson<ShimState>(files.state(bundle));
    const exit = this.exitStatus(bundle, meta);
    const running = exit === null && isAlive(state);
    let st: ContainerInfo['state'];
    if (state === null && exit === null) st = 'created';
    else if (running) st = 'running';
    else st = 'exited';
    return {
      id: meta.id,
      runtime: meta.runtime,
      state: st,
      pid: running && state !== null ? state.initPid : null,
      ip: meta.ip,
      createdAt: meta.createdAt,
      startedAt: meta.startedAt,
      exit:
        exit ??
        (st === 'exited'
          ? { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString() }
          : null),
      labels: meta.spec.labels,
      logPath: files.log(bundle),
    };
  }

  async inspect(id: string): Promise<ContainerInfo> {
    const { bundle, meta } = this.meta(id);
    return this.settled(bundle, meta);
  }

  async list(): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const id of readdirSync(this.containersDir)) {
      const bundle = join(this.containersDir, id);
      const meta = readJson<Meta>(files.meta(bundle));
      if (meta === null || meta.runtime !== this.name) continue;
      out.push(await this.settled(bundle, meta));
    }
    return out;
  }

  /**
   * The info of a container whose status is known. Its init is gone a moment before the shim
   * has drained the last output and written `exit`; read in that moment, the status would be
   * the made-up 255 (a crash on start reported as "exited with code 255"), so wait for the
   * shim, a bounded while. Only a shim that died too leaves the status unknown.
   */
  private async settled(bundle: string, meta: Meta): Promise<ContainerInfo> {
    const info = this.info(bundle, meta);
    if (info.state !== 'exited' || existsSync(files.exit(bundle)) || !this.shimAlive(bundle))
      return info;
    const exit = await this.wait(meta.id, { timeoutMs: EXIT_SETTLE_MS }).catch(() => null);
    return exit === null ? info : { ...info, exit };
  }

  async wait(
    id: string,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<ExitStatus> {
    const { bundle, meta } = this.meta(id);
    const deadline =
      opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.timeoutMs;
    // The shim writes `exit` by rename, so a directory watch sees it; the poll covers watches
    // that miss events and a shim that died without writing it. An abort wakes it too: the
    // watch would otherwise keep a stopping process alive until the timeout.
    let wake: (() => void) | null = null;
    const watcher = watch(bundle, () => wake?.());
    const onAbort = () => wake?.();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        if (opts.signal?.aborted === true)
          throw new RuntimeError(`stopped waiting for container "${id}"`, { id });
        const exit = this.exitStatus(bundle, meta);
        if (exit !== null) return exit;
        const info = this.info(bundle, meta);
        // The init can be gone a moment before its shim has written `exit`; only a shim
        // that died too (killed -9 with its container) makes the status unknown.
        if (info.state === 'exited' && !this.shimAlive(bundle)) {
          const late = this.exitStatus(bundle, meta);
          if (late !== null) return late;
          if (info.exit !== null) return info.exit;
        }
        if (info.state === 'created')
          throw new RuntimeError(`container "${id}" has not been started`, { id });
        const left = deadline - Date.now();
        if (left <= 0) throw new WaitTimeout(`timed out waiting for container "${id}"`, { id });
        await Promise.race([new Promise<void>((r) => (wake = r)), sleep(Math.min(100, left))]);
      }
    } finally {
      watcher.close();
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private shimAlive(bundle: string): boolean {
    const state = readJson<ShimState>(files.state(bundle));
    if (state === null) return false;
    try {
      process.kill(state.shimPid, 0);
      return true;
    } catch {
      return false;
    }
  }

  async kill(id: string, sig = 'SIGKILL'): Promise<void> {
    const { bundle, meta } = this.meta(id);
    const n = signalNumber(sig);
    const state = readJson<ShimState>(files.state(bundle));
    if (state === null || !isAlive(state) || existsSync(files.exit(bundle))) return;
    await this.signal(bundle, meta, state, n);
  }

  async stop(id: string, opts: { graceMs?: number } = {}): Promise<ExitStatus> {
    const { meta } = this.meta(id);
    const grace = opts.graceMs ?? 10_000;
    const info = await this.inspect(id);
    if (info.state === 'created')
      throw new RuntimeError(`container "${id}" has not been started`, { id });
    if (info.state === 'running') {
      await this.kill(id, meta.spec.stopSignal);
      try {
        return await this.wait(id, { timeoutMs: grace });
      } catch {
        await this.kill(id, 'SIGKILL');
      }
    }
    return this.wait(id, { timeoutMs: 10_000 });
  }

  async stats(id: string): Promise<Stats> {
    const { meta } = this.meta(id);
    return new Cgroup(meta.cgroup).stats();
  }

  async exec(id: string, opts: ExecOptions): Promise<ProcessResult> {
    const { bundle, meta } = this.meta(id);
    const state = readJson<ShimState>(files.state(bundle));
    if (state === null || !isAlive(state) || existsSync(files.exit(bundle)))
      throw new RuntimeError(`container "${id}" is not running`, { id });
    if (!Array.isArray(opts.command) || opts.command.length === 0)
      throw new InvalidSpec('command: a command is required', { field: 'command' });
    const user =
      opts.user === undefined
        ? { uid: meta.uid, gid: meta.gid, groups: meta.groups }
        : await resolveUser(this.layers(meta), opts.user);
    return this.execIn(bundle, meta, state, opts, user);
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const { bundle, meta } = this.meta(id);
    const info = this.info(bundle, meta);
    if (info.state === 'running') {
      if (opts.force !== true)
        throw new RuntimeError(`container "${id}" is running; stop it first or force`, { id });
      await this.kill(id, 'SIGKILL');
      await this.wait(id, { timeoutMs: 10_000 }).catch(() => undefined);
    }
    await this.teardown(bundle, meta);
    // The network goes even when the cgroup will not: a netns left behind holds its veth and
    // its lease for good, while a busy cgroup keeps its meta, so the next remove (or the
    // daemon's next start) tries it again.
    const cgroup = await new Cgroup(meta.cgroup).remove().then(
      () => null,
      (e: unknown) => e,
    );
    if (meta.netnsPath !== null || meta.ip !== null || existsSync(`/run/netns/paas-${id}`))
      await this.net().detach(id);
    if (cgroup !== null) throw cgroup;
    rmSync(bundle, { recursive: true, force: true });
  }

  async sweep(): Promise<string[]> {
    const swept: string[] = [];
    const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) =>
        (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) =>
          String.fromCharCode(parseInt(o, 8)),
        ),
      );
    for (const e of readdirSync(this.containersDir, { withFileTypes: true })) {
      const id = e.name;
      if (!e.isDirectory() || !isContainerId(id)) continue;
      const bundle = this.bundle(id);
      if (existsSync(files.meta(bundle))) continue;
      // Nothing mounts before the meta is written; if something is, rm -r would reach through
      // it into an image layer or a volume, so the bundle is left for a person to look at.
      if (mountPoints.some((m) => m === bundle || m.startsWith(`${bundle}/`))) continue;
      await this.net().detach(id);
      await new Cgroup(join(this.cgroupParent, id)).remove();
      rmSync(bundle, { recursive: true, force: true });
      swept.push(id);
    }
    return swept;
  }

  /** Writes a file into the bundle; used by backends for configs. */
  protected put(bundle: string, name: string, data: string): string {
    const p = join(bundle, name);
    writeFileSync(p, data);
    return p;
  }
}

/**
 * First use of a platform-made volume: an empty, root-owned directory becomes the
 * container user's, so an app running as USER node can write to its fresh volume. Anything
 * already in use (not empty, or owned by someone else) is left as it is.
 */
function initVolumeOwners(spec: NormalizedSpec, user: { uid: number; gid: number }): void {
  const shift = spec.userns ?? { hostUid: 0, hostGid: 0 };
  for (const v of spec.volumes) {
    if (v.initOwner !== true) continue;
    const st = lstatSync(v.source);
    if (!st.isDirectory() || st.uid !== 0 || readdirSync(v.source).length > 0) continue;
    chownSync(v.source, shift.hostUid + user.uid, shift.hostGid + user.gid);
  }
}

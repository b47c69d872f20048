// The `runc` backend: the same bundles, with an OCI runtime-spec config.json and Debian's
// runc doing the setup. The native shim's `supervise` mode holds runc's stdio and writes the
// same log, state and exit files, so adoption works identically for both backends.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { RuntimeError, Unsupported } from '../errors/index.ts';
import { BundleRuntime, SIGNAL_NAMES } from './base.ts';
import { files, writableDirs, type Meta, type ShimExit, type ShimState } from './bundle.ts';
import { DEFAULT_NATIVE_DIR } from './native.ts';
import {
  containerCaps,
  MASKED_PATHS,
  READONLY_PATHS,
  seccompFromList,
  type OciSeccomp,
} from './policy.ts';
import { runProcess } from './proc.ts';
import type { ExecOptions, ProcessResult, RunOptions, RuntimeOptions } from './types.ts';

const exec = promisify(execFile);
const INIT_PATH = '/dev/.paas-init';

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

export class RuncRuntime extends BundleRuntime {
  readonly name = 'runc' as const;
  readonly features = { tty: false, userns: false } as const;
  readonly runc: string;
  readonly root: string;
  readonly shim: string;
  private readonly seccompList: string;
  private seccomp: OciSeccomp | null = null;

  constructor(opts: RuntimeOptions) {
    super(opts);
    const runc = which('runc');
    if (runc === null)
      throw new Unsupported('runtime runc: runc is not installed (apt-get install runc)');
    this.runc = runc;
    this.root = join(opts.dataDir, 'runc');
    mkdirSync(this.root, { recursive: true });
    this.shim = join(opts.nativeDir ?? DEFAULT_NATIVE_DIR, 'paas-shim');
    // The list paas-shim's filter was built from, so both backends enforce the same one.
    this.seccompList = join(opts.nativeDir ?? DEFAULT_NATIVE_DIR, 'seccomp.list');
  }

  /** runc reports a signalled container as exit code 128+n, as a shell does. */
  protected override exitSignal(exit: ShimExit): number | null {
    if (exit.signal !== undefined && exit.signal !== null) return exit.signal;
    const n = exit.exitCode - 128;
    return exit.exitCode > 128 && SIGNAL_NAMES[n] !== undefined ? n : null;
  }

  protected async prepare(bundle: string, meta: Meta): Promise<void> {
    if (!existsSync(this.shim))
      throw new Unsupported(
        `runtime runc: ${this.shim} is missing; build it with "make -C native"`,
      );
    if (!existsSync(this.seccompList))
      throw new Unsupported(
        `runtime runc: ${this.seccompList} is missing; build it with "make -C native"`,
      );
    this.seccomp ??= seccompFromList(readFileSync(this.seccompList, 'utf8'));
    const s = meta.spec;
    // OCI uidMappings alone would show the host-owned overlay we mount as nobody's: the
    // layers would need runc's idmapped rootfs, which this backend does not set up.
    if (s.userns !== undefined)
      throw new Unsupported(
        'runtime runc: userns is not supported by the runc backend (use native)',
      );
    // A bundle written before netRaw existed has none: the default (no NET_RAW) applies.
    const caps = containerCaps({ netRaw: s.netRaw === true });
    const namespaces: { type: string; path?: string }[] = [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'cgroup' },
    ];
    if (s.net !== 'host')
      namespaces.push(
        meta.netnsPath === null ? { type: 'network' } : { type: 'network', path: meta.netnsPath },
      );
    const bind = (src: string, dst: string, ro: boolean) => ({
      destination: dst,
      type: 'bind',
      source: src,
      options: ['rbind', 'nosuid', 'nodev', ro ? 'ro' : 'rw'],
    });
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: meta.uid, gid: meta.gid, additionalGids: meta.groups },
        // PID 1 is our init (paas-shim init), as with the native backend: it forwards stop
        // signals, reaps orphans and turns exec failures into 126/127.
        args: [INIT_PATH, 'init', '--', ...s.command],
        env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
        cwd: s.cwd,
        capabilities: {
          bounding: caps,
          effective: caps,
          permitted: caps,
          inheritable: [],
          ambient: [],
        },
        noNewPrivileges: true,
      },
      root: { path: files.rootfs(bundle), readonly: s.readonly },
      hostname: s.hostname,
      mounts: [
        {
          destination: '/proc',
          type: 'proc',
          source: 'proc',
          options: ['nosuid', 'noexec', 'nodev'],
        },
        {
          destination: '/dev',
          type: 'tmpfs',
          source: 'tmpfs',
          options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
        },
        {
          destination: '/dev/pts',
          type: 'devpts',
          source: 'devpts',
          options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
        },
        {
          destination: '/dev/shm',
          type: 'tmpfs',
          source: 'shm',
          options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
        },
        {
          destination: '/dev/mqueue',
          type: 'mqueue',
          source: 'mqueue',
          options: ['nosuid', 'noexec', 'nodev'],
        },
        {
          destination: '/sys',
          type: 'sysfs',
          source: 'sysfs',
          options: ['nosuid', 'noexec', 'nodev', 'ro'],
        },
        // Read-only: with the init being a host binary, writing it through /proc/1/exe must
        // fail (CVE-2019-5736). /dev is a fresh tmpfs, so the mount point leaves no trace.
        bind(this.shim, INIT_PATH, true),
        bind(join(bundle, 'hosts'), '/etc/hosts', true),
        bind(join(bundle, 'resolv.conf'), '/etc/resolv.conf', true),
        ...s.volumes.map((v) => bind(v.source, v.target, v.readonly === true)),
      ],
      linux: {
        namespaces,
        // runc removes its cgroup when the container exits, taking the OOM counters with it,
        // so it gets a child of ours: our directory holds the limits (hierarchical on v1
        // with use_hierarchy and on v2) and outlives runc for stats and OOM reports.
        cgroupsPath: `/${meta.cgroup}/runc`,
        resources: { devices: [{ allow: false, access: 'rwm' }] },
        maskedPaths: [...MASKED_PATHS],
        readonlyPaths: [...READONLY_PATHS],
        seccomp: this.seccomp,
      },
    };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  }

  private async mountRoot(bundle: string, meta: Meta): Promise<void> {
    const r = meta.spec.rootfs;
    const target = files.rootfs(bundle);
    if ('dir' in r || (meta.spec.readonly && r.lowers.length === 1)) {
      // overlayfs wants two lowers when it has no upper; one read-only layer is a bind.
      await exec('mount', ['--bind', 'dir' in r ? r.dir : (r.lowers[0] as string), target]);
    } else {
      const w = writableDirs(bundle, meta.spec);
      const opts = meta.spec.readonly
        ? `lowerdir=${r.lowers.join(':')}`
        : `lowerdir=${r.lowers.join(':')},upperdir=${w.upper},workdir=${w.work}`;
      await exec('mount', ['-t', 'overlay', 'overlay', '-o', opts, target]);
    }
  }

  private runcArgs(bundle: string, meta: Meta): string[] {
    return ['--root', this.root, 'run', '--bundle', bundle, meta.id];
  }

  protected async launch(bundle: string, meta: Meta): Promise<void> {
    await this.mountRoot(bundle, meta);
    const r = await runProcess(this.shim, [
      'supervise',
      bundle,
      '--',
      this.runc,
      ...this.runcArgs(bundle, meta),
    ]);
    if (r.exitCode !== 0) {
      await this.teardown(bundle, meta);
      throw new RuntimeError(`start: ${r.stderr.trim() || `paas-shim exited ${r.exitCode}`}`, {
        exitCode: r.exitCode,
      });
    }
    // The shim returns once `runc run` is exec'd, before runc has created the container;
    // signals and exec sent in that window would miss it. Start means running, as native.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !existsSync(files.exit(bundle))) {
      const st = await exec(this.runc, ['--root', this.root, 'state', meta.id]).then(
        (o) => (JSON.parse(o.stdout) as { status: string }).status,
        () => 'absent',
      );
      if (st === 'running' || st === 'stopped') return;
      await sleep(10);
    }
  }

  protected async foreground(bundle: string, meta: Meta, opts: RunOptions): Promise<ProcessResult> {
    await this.mountRoot(bundle, meta);
    try {
      return await runProcess(this.runc, this.runcArgs(bundle, meta), opts);
    } finally {
      await this.teardown(bundle, meta);
    }
  }

  protected async signal(
    _bundle: string,
    meta: Meta,
    _state: ShimState,
    sig: number,
  ): Promise<void> {
    const name = SIGNAL_NAMES[sig] ?? String(sig);
    await exec(this.runc, ['--root', this.root, 'kill', meta.id, name]).catch(() => undefined);
  }

  protected execIn(
    _bundle: string,
    meta: Meta,
    _state: ShimState,
    opts: ExecOptions,
    user: { uid: number; gid: number; groups: number[] },
  ): Promise<ProcessResult> {
    const args = [
      '--root',
      this.root,
      'exec',
      '--user',
      `${user.uid}:${user.gid}`,
      '--cwd',
      opts.cwd ?? meta.spec.cwd,
    ];
    for (const g of user.groups) args.push('--additional-gids', String(g));
    for (const [k, v] of Object.entries({ ...meta.spec.env, ...(opts.env ?? {}) }))
      args.push('--env', `${k}=${v}`);
    args.push(meta.id, ...opts.command);
    return runProcess(this.runc, args, { stdio: opts.stdio ?? 'pipe', stdin: opts.stdin });
  }

  protected async teardown(bundle: string, meta: Meta): Promise<void> {
    await exec(this.runc, ['--root', this.root, 'delete', '--force', meta.id]).catch(
      () => undefined,
    );
    const target = files.rootfs(bundle);
    for (let i = 0; i < 5; i++) {
      const mounted = await exec('mountpoint', ['-q', target]).then(
        () => true,
        () => false,
      );
      if (!mounted) return;
      await exec('umount', [target]).catch(() =>
        exec('umount', ['-l', target]).catch(() => undefined),
      );
    }
  }
}

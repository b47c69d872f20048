// The `native` backend: writes native/SPEC.md's spec file and drives native/build/paas-shim.
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidSpec, RuntimeError, Unsupported } from '../errors/index.ts';
import { BundleRuntime, validSize } from './base.ts';
import { encodeSpec, files, writableDirs, type Meta, type ShimState } from './bundle.ts';
import { Cgroup } from './cgroups.ts';
import { containerCaps } from './policy.ts';
import { runProcess } from './proc.ts';
import { SIGNALS } from './spec.ts';
import type { ExecOptions, ProcessResult, RunOptions, RuntimeOptions } from './types.ts';

export const DEFAULT_NATIVE_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'native',
  'build',
);

export class NativeRuntime extends BundleRuntime {
  readonly name = 'native' as const;
  readonly features = { tty: true, userns: true } as const;
  readonly shim: string;

  constructor(opts: RuntimeOptions) {
    super(opts);
    this.shim = join(opts.nativeDir ?? DEFAULT_NATIVE_DIR, 'paas-shim');
    if (!existsSync(this.shim)) {
      throw new Unsupported(
        `runtime native: ${this.shim} is missing; build it with "make -C native"`,
      );
    }
  }

  protected async prepare(bundle: string, meta: Meta): Promise<void> {
    const s = meta.spec;
    const lines: [string, string][] = [['id', s.id]];
    if ('dir' in s.rootfs) {
      lines.push(['rootfs', s.rootfs.dir]);
    } else {
      for (const l of s.rootfs.lowers) lines.push(['lower', l]);
      if (!s.readonly) {
        const w = writableDirs(bundle, s);
        lines.push(['upper', w.upper], ['work', w.work]);
      }
    }
    lines.push(['readonly', s.readonly ? '1' : '0'], ['hostname', s.hostname]);
    for (const a of s.command) lines.push(['arg', a]);
    for (const [k, v] of Object.entries(s.env)) lines.push(['env', `${k}=${v}`]);
    lines.push(
      ['cwd', s.cwd],
      ['uid', String(meta.uid)],
      ['gid', String(meta.gid)],
      ['groups', meta.groups.join(',')],
    );
    lines.push(['net', s.net === 'host' ? 'host' : (meta.netnsPath ?? 'none')]);
    for (const d of new Cgroup(meta.cgroup).dirs()) lines.push(['cgroup', d]);
    for (const v of s.volumes)
      lines.push(['mount', `${v.source}\t${v.target}\t${v.readonly === true ? 'ro' : 'rw'}`]);
    lines.push(['hosts', join(bundle, 'hosts')], ['resolv', join(bundle, 'resolv.conf')]);
    lines.push(
      ['stopsignal', String(SIGNALS[s.stopSignal] ?? 15)],
      ['seccomp', 'default'],
      // An explicit list, not the shim's `default` (Docker's, with NET_RAW): policy.ts decides.
      ['caps', containerCaps({ netRaw: s.netRaw }).join(',')],
      ['nonewprivs', '1'],
    );
    if (s.userns !== undefined) {
      const u = s.userns;
      // The user resolved from the image must exist inside the namespace.
      for (const id of [meta.uid, meta.gid, ...meta.groups]) {
        if (id >= u.count)
          throw new InvalidSpec(`user: id ${id} is outside userns (count ${u.count})`, {
            field: 'user',
          });
      }
      lines.push(['userns', `${u.hostUid}:${u.hostGid}:${u.count}`]);
    }
    writeFileSync(files.spec(bundle), encodeSpec(lines));
  }

  protected async launch(bundle: string): Promise<void> {
    const r = await runProcess(this.shim, ['start', bundle]);
    if (r.exitCode !== 0)
      throw new RuntimeError(`start: ${r.stderr.trim() || `paas-shim exited ${r.exitCode}`}`, {
        exitCode: r.exitCode,
      });
  }

  protected foreground(bundle: string, _meta: Meta, opts: RunOptions): Promise<ProcessResult> {
    const tty = opts.tty;
    if (tty === undefined) return runProcess(this.shim, ['run', bundle], opts);
    // SPEC.md "Terminal": the size goes in the spec, resizes as lines on the shim's fd 3.
    appendFileSync(files.spec(bundle), encodeSpec([['tty', `${tty.rows} ${tty.cols}`]]));
    return runProcess(this.shim, ['run', bundle], {
      ...opts,
      fd3: (w) =>
        tty.control?.((size) => {
          if (validSize(size)) w.write(`${size.rows} ${size.cols}\n`);
        }),
    });
  }

  protected async signal(
    _bundle: string,
    _meta: Meta,
    state: ShimState,
    sig: number,
  ): Promise<void> {
    try {
      process.kill(state.initPid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  protected async execIn(
    bundle: string,
    meta: Meta,
    _state: ShimState,
    opts: ExecOptions,
    user: { uid: number; gid: number; groups: number[] },
  ): Promise<ProcessResult> {
    const env = { ...meta.spec.env, ...(opts.env ?? {}) };
    const lines: [string, string][] = opts.command.map((a) => ['arg', a] as [string, string]);
    for (const [k, v] of Object.entries(env)) lines.push(['env', `${k}=${v}`]);
    lines.push(
      ['cwd', opts.cwd ?? meta.spec.cwd],
      ['uid', String(user.uid)],
      ['gid', String(user.gid)],
      ['groups', user.groups.join(',')],
    );
    const specFile = join(bundle, `exec-${randomBytes(6).toString('hex')}.spec`);
    writeFileSync(specFile, encodeSpec(lines));
    try {
      return await runProcess(this.shim, ['exec', bundle, specFile], {
        stdio: opts.stdio ?? 'pipe',
        stdin: opts.stdin,
      });
    } finally {
      rmSync(specFile, { force: true });
    }
  }

  protected async teardown(): Promise<void> {
    // The root mount lives in the container's own mount namespace and dies with it.
  }
}

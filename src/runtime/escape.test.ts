// The escape suite (bubblewrap-style: assert that escapes fail). Everything runs as root
// inside the container, with Docker's default capabilities, as an untrusted app would.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_DIR, PROBE, tempDir, testRootfs } from '../../test/helpers/host.ts';
import { createRuntime } from './index.ts';
import type { ContainerSpec, ProcessResult, Runtime, RuntimeName } from './types.ts';

const CHECKS = [
  'mount',
  'umount',
  'pivot_root',
  'mknod',
  'init_module',
  'finit_module',
  'kexec_load',
  'reboot',
  'swapon',
  'sethostname',
  'write-proc-sys',
  'write-sys',
  'read-kcore',
  'open-proc1-exe-write',
  'unshare-userns',
  // the seccomp allowlist: what a blocklist lets through
  'vsock',
  'lsm',
  'new-syscall',
  'personality',
  'x32',
] as const;

// Checks whose BLOCKED could also be the kernel's own answer (a kernel without AF_VSOCK, the
// lsm_* calls or the newer syscalls): unconfined on this host they must report ALLOWED, so a
// BLOCKED inside the container is the filter's doing.
const KERNEL_CHECKS = ['vsock', 'lsm', 'new-syscall', 'personality', 'x32'] as const;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const runcBinary = () => execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();

it.each(KERNEL_CHECKS)('the host kernel has what the %s check calls', (check) => {
  const r = spawnSync(PROBE, [check], { encoding: 'utf8' }).stdout.trim();
  expect(r).toMatch(new RegExp(`^ALLOWED ${check}`));
});

// One allowlist (native/seccomp.list), two enforcers: paas-shim's compiled filter and runc's
// reading of config.json. Every probe, errno included, must come out the same.
it('both backends answer every escape probe identically', async () => {
  const tmp = tempDir('escape-same');
  try {
    const probeDir = join(tmp.dir, 'probe');
    mkdirSync(probeDir);
    writeFileSync(join(probeDir, 'escape-probe'), readFileSync(PROBE), { mode: 0o755 });
    const outputs: string[] = [];
    for (const name of ['native', 'runc'] as RuntimeName[]) {
      const rt = createRuntime(name, {
        dataDir: join(tmp.dir, name),
        nativeDir: NATIVE_DIR,
        cgroupParent: `paastest-escape-same-${name}`,
      });
      const r = await rt.run(
        {
          rootfs: { lowers: [testRootfs()] },
          command: ['/probe/escape-probe', 'all'],
          volumes: [{ source: probeDir, target: '/probe', readonly: true }],
        },
        { stdio: 'pipe' },
      );
      expect(r.exitCode).toBe(0);
      outputs.push(r.stdout);
    }
    expect(outputs[0]).toMatch(/^BLOCKED vsock EPERM$/m);
    expect(outputs[1]).toBe(outputs[0]);
  } finally {
    tmp.cleanup();
  }
}, 60_000);

describe.each(['native', 'runc'] as RuntimeName[])('escape suite on %s', (name) => {
  const tmp = tempDir(`escape-${name}`);
  let rt: Runtime;
  let rootfs: string;
  const probeDir = join(tmp.dir, 'probe');
  const run = (s: Partial<ContainerSpec>): Promise<ProcessResult> =>
    rt.run(
      {
        rootfs: { lowers: [rootfs] },
        command: ['true'],
        volumes: [{ source: probeDir, target: '/probe', readonly: true }],
        ...s,
      },
      { stdio: 'pipe' },
    );

  beforeAll(() => {
    rootfs = testRootfs();
    rt = createRuntime(name, {
      dataDir: join(tmp.dir, 'data'),
      nativeDir: NATIVE_DIR,
      cgroupParent: `paastest-escape-${name}`,
    });
    mkdirSync(probeDir);
    writeFileSync(join(probeDir, 'escape-probe'), readFileSync(PROBE), { mode: 0o755 });
  });
  afterAll(() => tmp.cleanup());

  it.each(CHECKS)('blocks %s', async (check) => {
    const r = await run({ command: ['/probe/escape-probe', check] });
    expect(r.stdout.trim()).toMatch(new RegExp(`^BLOCKED ${check} `));
    expect(r.exitCode).toBe(0);
  });

  it('keeps host processes invisible', async () => {
    const r = await run({ command: ['sh', '-c', 'ls /proc | grep -c "^[0-9]"; ps -o pid,comm'] });
    const count = Number(r.stdout.split('\n')[0]);
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(8);
    expect(r.stdout).not.toContain('vitest');
    expect(existsSync(`/proc/${process.pid}`)).toBe(true);
  });

  it('makes /proc/sys and /sys read-only and masks /proc/kcore (when the kernel has it) and /proc/keys', async () => {
    const r = await run({
      command: [
        'sh',
        '-c',
        'echo 1 > /proc/sys/vm/drop_caches && echo WROTE-PROC-SYS; touch /sys/x && echo WROTE-SYS; if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo 0; fi; cat /proc/keys | wc -c',
      ],
    });
    expect(r.stdout).not.toContain('WROTE');
    expect(r.stdout.trim().split('\n')).toEqual(['0', '0']);
  });

  it('cannot change the host hostname', async () => {
    const before = hostname();
    await run({ command: ['sh', '-c', 'hostname evil-host; echo x > /proc/sys/kernel/hostname'] });
    expect(hostname()).toBe(before);
  });

  it('cannot overwrite a host binary through /proc/self/exe or /proc/1/exe', async () => {
    const r = await run({
      command: [
        'sh',
        '-c',
        'echo x >> /proc/self/exe && echo WROTE-SELF; echo x >> /proc/1/exe && echo WROTE-INIT; true',
      ],
    });
    expect(r.stdout).not.toContain('WROTE-INIT');
    // /proc/self/exe is the container's own copy-on-write busybox, never the host's file.
    const host = readFileSync(join(rootfs, 'bin', 'busybox'));
    expect(host.subarray(-2).toString()).not.toBe('x\n');
    expect(readFileSync(join(NATIVE_DIR, 'paas-shim')).subarray(-2).toString()).not.toBe('x\n');
  });

  // CVE-2019-5736 through `#!/proc/self/exe`: the runtime's exec helper (a health check,
  // `paas run` into a container) execs a script of the image starting `#!/proc/self/exe`, so
  // the kernel runs the helper's own binary as a process of the container. A process already
  // in the container (the probe's catch-exe) takes its /proc/PID/exe and tries to write it.
  // native: the interpreter is paas-shim, run from a private read-only mount (EROFS);
  // runc 1.1: the exec fails (`no such file or directory`) and nothing foreign ever runs (its
  // init is a sealed memfd copy of runc, its own fix). Either way no host binary changes.
  const EXPECT_5736 = {
    native: { victim: /usage: paas-shim/, attacker: /^BLOCKED catch-exe EROFS / },
    runc: { victim: /no such file or directory/, attacker: /^MISSED catch-exe/ },
  }[name];
  it('an exec target starting with #!/proc/self/exe cannot be used to write the host runtime', async () => {
    const shared = join(tmp.dir, 'shared-5736');
    mkdirSync(shared, { recursive: true });
    const hosts = [join(NATIVE_DIR, 'paas-shim'), runcBinary()];
    const before = hosts.map(sha256);
    const c = await rt.create({
      rootfs: { lowers: [rootfs] },
      command: ['sleep', '120'],
      volumes: [
        { source: probeDir, target: '/probe', readonly: true },
        { source: shared, target: '/shared' },
      ],
    });
    try {
      await rt.start(c.id);
      const made = await rt.exec(c.id, {
        command: ['sh', '-c', 'printf "#!/proc/self/exe\\n" > /evil && chmod 755 /evil'],
      });
      expect(made.exitCode).toBe(0);
      let result = '';
      let victim: ProcessResult | null = null;
      // The exec'd binary lives for about a millisecond: a miss is retried, a bounded number of times.
      for (let n = 0; n < 5 && !/^(ALLOWED|BLOCKED)/.test(result); n++) {
        const attacker = rt.exec(c.id, {
          command: ['/probe/escape-probe', 'catch-exe', `/shared/ready-${n}`, `/shared/done-${n}`],
        });
        for (let i = 0; i < 500 && !existsSync(join(shared, `ready-${n}`)); i++) await sleep(20);
        expect(existsSync(join(shared, `ready-${n}`))).toBe(true);
        victim = await rt.exec(c.id, { command: ['/evil'] });
        writeFileSync(join(shared, `done-${n}`), '');
        result = (await attacker).stdout.trim();
      }
      expect(victim?.exitCode).not.toBe(0);
      expect(victim?.stderr).toMatch(EXPECT_5736.victim);
      expect(result).toMatch(EXPECT_5736.attacker);
    } finally {
      await rt.remove(c.id, { force: true });
    }
    expect(hosts.map(sha256)).toEqual(before);
  });

  it('resolves volume targets inside the rootfs even through symlinks to / and ..', async () => {
    const evil = join(tmp.dir, 'evil-layer');
    rmSync(evil, { recursive: true, force: true });
    mkdirSync(evil);
    symlinkSync('/', join(evil, 'toroot'));
    symlinkSync('../../../../../../../../tmp', join(evil, 'up'));
    const src = join(tmp.dir, 'vol');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'marker'), 'inside');
    const hostTarget1 = '/paas-escape-test-target';
    const hostTarget2 = '/tmp/paas-escape-test-target';
    rmSync(hostTarget1, { recursive: true, force: true });
    rmSync(hostTarget2, { recursive: true, force: true });
    const r = await rt.run(
      {
        rootfs: { lowers: [evil, rootfs] },
        command: [
          'sh',
          '-c',
          'cat /paas-escape-test-target/marker; echo; cat /tmp/paas-escape-test-target/marker',
        ],
        volumes: [
          { source: src, target: '/toroot/paas-escape-test-target' },
          { source: src, target: '/up/paas-escape-test-target' },
        ],
      },
      { stdio: 'pipe' },
    );
    expect(existsSync(hostTarget1)).toBe(false);
    expect(existsSync(hostTarget2)).toBe(false);
    expect(r.stdout).toBe('inside\ninside');
  });
});

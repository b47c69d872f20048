// `paas container:run`: a container in the foreground without the daemon, like `runc run`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/registry/index.ts';
import { cgroupDirs, REPO, tempDir, testRootfs } from './helpers/host.ts';

const PAAS = join(REPO, 'bin', 'paas');
const tmp = tempDir('container-run');
const run = (args: string[], input?: string) =>
  spawnSync(PAAS, ['container:run', '--data-dir', tmp.dir, ...args], {
    encoding: 'utf8',
    input,
    timeout: 60_000,
  });

beforeAll(async () => {
  const store = await openStore(tmp.dir);
  await store.importRootfs(testRootfs(), 'library/busybox:latest', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
});
afterAll(() => tmp.cleanup());

describe.each(['native', 'runc'])('paas container:run --runtime %s', (runtime) => {
  it('passes stdio through and exits with the command status', () => {
    const r = run(
      [
        '--runtime',
        runtime,
        '--rootfs',
        testRootfs(),
        '--env',
        'WHO=world',
        '--',
        'sh',
        '-c',
        'read x; echo "hello $WHO $x"; echo oops >&2; exit 7',
      ],
      'stdin-line\n',
    );
    expect(r.stdout).toBe('hello world stdin-line\n');
    expect(r.stderr).toBe('oops\n');
    expect(r.status).toBe(7);
  });

  it('applies limits, user, workdir and the bridge network', () => {
    const r = run([
      '--runtime',
      runtime,
      '--rootfs',
      testRootfs(),
      '--memory',
      '64m',
      '--pids',
      '20',
      '--cpus',
      '0.5',
      '--user',
      'app',
      '--workdir',
      '/tmp/w',
      '--net',
      'bridge',
      '--',
      'sh',
      '-c',
      'id -u; pwd; ip -o -4 addr show eth0 | wc -l',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n').slice(0, 3)).toEqual(['1000', '/tmp/w', '1']);
    // The memory limit holds: a shell string grown past 64 MiB gets the container OOM-killed.
    const hog = run([
      '--runtime',
      runtime,
      '--rootfs',
      testRootfs(),
      '--memory',
      '64m',
      '--',
      'sh',
      '-c',
      'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while [ ${#x} -lt 300000000 ]; do x="$x$x"; done; echo survived',
    ]);
    expect(hog.stdout).not.toContain('survived');
    expect(hog.status).toBe(137);
  });

  it('runs an image from the store by reference', () => {
    const r = run([
      '--runtime',
      runtime,
      '--image',
      'busybox',
      '--',
      'sh',
      '-c',
      'echo from-image; ls /bin/busybox',
    ]);
    expect(r.stdout).toBe('from-image\n/bin/busybox\n');
    expect(r.status).toBe(0);
  });
});

describe('paas container:run errors', () => {
  it.each([
    [['--rootfs', '/nonexistent', '--', 'true'], /rootfs: "\/nonexistent" does not exist/],
    [['--memory', '12q', '--rootfs', '/', '--', 'true'], /--memory: "12q" is not a size/],
    [['--cpus', 'lots', '--rootfs', '/', '--', 'true'], /--cpus: "lots" is not a number/],
    [['--net', 'wifi', '--rootfs', '/', '--', 'true'], /--net "wifi" must be none, bridge or host/],
    [['--runtime', 'crun', '--rootfs', '/', '--', 'true'], /unknown runtime "crun"/],
    [['--rootfs', '/', 'true'], /give the command after "--"/],
    [['--bogus', '--', 'true'], /Unknown option '--bogus'/],
    [['--image', 'nosuchimage:1', '--', 'true'], /nosuchimage/],
    [['--rootfs', '/', '--user', 'ghost', '--', 'true'], /user: "ghost" is not in the image/],
  ])('%j fails with exit 2-3 and a message naming the problem', (args, message) => {
    const r = run(args);
    expect(r.stderr).toMatch(message);
    expect([2, 3]).toContain(r.status);
  });

  it('leaves no cgroup behind', () => {
    expect(cgroupDirs('paas').filter((d) => d.includes(tmp.dir))).toEqual([]);
  });
});

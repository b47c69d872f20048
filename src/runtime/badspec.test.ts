// Bad specs get a clear error naming the field, and no failure leaves anything behind:
// no mount, cgroup, netns, veth, IP lease or bundle directory.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  dropBridge,
  links,
  mountsUnder,
  NATIVE_DIR,
  netnsNames,
  tempDir,
  testRootfs,
} from '../../test/helpers/host.ts';
import { PaasError } from '../errors/index.ts';
import { createRuntime, Network, parseCpus, parseMemory, parsePids } from './index.ts';
import type { ContainerSpec, Runtime, RuntimeName } from './types.ts';

// Its own bridge (not the runtime contract's), so dropping it cannot pull a bridge from under
// another file running at the same time.
describe.each(['native', 'runc'] as RuntimeName[])('bad specs on %s', (name) => {
  const tmp = tempDir(`badspec-${name}`);
  const opts = {
    dataDir: tmp.dir,
    nativeDir: NATIVE_DIR,
    bridge: 'paastest4',
    subnet: '10.78.4.0/24',
    networkStateDir: tmp.dir,
    cgroupParent: `paastest-bad-${name}`,
  };
  let rt: Runtime;
  let rootfs: string;
  const netnsBefore = new Set<string>();
  const linksBefore = new Set<string>();

  beforeAll(() => {
    rootfs = testRootfs();
    rt = createRuntime(name, opts);
    for (const n of netnsNames()) netnsBefore.add(n);
    for (const l of links()) linksBefore.add(l);
  });

  function expectClean(): void {
    expect(mountsUnder(tmp.dir)).toEqual([]);
    expect(cgroupDirs(`paastest-bad-${name}`)).toEqual([]);
    expect(netnsNames().filter((n) => !netnsBefore.has(n))).toEqual([]);
    expect(links().filter((l) => !linksBefore.has(l) && l !== opts.bridge)).toEqual([]);
    const containers = join(tmp.dir, 'containers');
    expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
    const net = new Network({ stateDir: tmp.dir, bridge: opts.bridge, subnet: opts.subnet });
    expect(net.leases()).toEqual([]);
    net.close();
  }

  afterAll(() => {
    dropBridge(opts.bridge);
    tmp.cleanup();
  });

  const cases: [string, () => Partial<ContainerSpec>, RegExp][] = [
    [
      'relative rootfs',
      () => ({ rootfs: { dir: 'relative/dir' } }),
      /^rootfs: "relative\/dir" is not an absolute path/,
    ],
    ['escaping rootfs', () => ({ rootfs: { dir: '/tmp/../etc' } }), /^rootfs: .*contains "\.\."/],
    [
      'missing rootfs',
      () => ({ rootfs: { dir: '/nonexistent/rootfs' } }),
      /^rootfs: "\/nonexistent\/rootfs" does not exist/,
    ],
    [
      'missing layer',
      () => ({ rootfs: { lowers: [rootfs, '/nonexistent/layer'] } }),
      /^rootfs\.lowers\[1\]: .* does not exist/,
    ],
    [
      'unknown user',
      () => ({ user: 'nosuchuser', net: 'bridge' }),
      /^user: "nosuchuser" is not in the image/,
    ],
    ['bad user syntax', () => ({ user: 'a:b:c' }), /^user: /],
    ['relative cwd', () => ({ cwd: 'app' }), /^cwd: "app" is not an absolute path/],
    [
      'escaping volume target',
      () => ({ volumes: [{ source: '/tmp', target: '/data/../../etc' }] }),
      /^volumes\[0\]\.target: .*contains "\.\."/,
    ],
    [
      'relative volume source',
      () => ({ volumes: [{ source: 'tmp', target: '/data' }] }),
      /^volumes\[0\]\.source: "tmp" is not an absolute path/,
    ],
    ['empty command', () => ({ command: [] }), /^command: a command is required/],
    [
      'bad env key',
      () => ({ env: { 'BAD-KEY': 'x' } }),
      /^env\.BAD-KEY: is not a valid variable name/,
    ],
    ['bad id', () => ({ id: '../x' }), /^id: /],
    ['bad hostname', () => ({ hostname: 'a_b' }), /^hostname: /],
    ['bad memory limit', () => ({ limits: { memoryBytes: 10 } }), /^limits\.memoryBytes: /],
    ['bad stop signal', () => ({ stopSignal: 'SIGFOO' }), /^stopSignal: /],
  ];

  it.each(cases)('refuses %s, naming the field, leaving nothing', async (_label, make, message) => {
    const spec: ContainerSpec = { rootfs: { dir: rootfs }, command: ['true'], ...make() };
    const err = await rt.create(spec).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).code).toBe('InvalidSpec');
    expect((err as PaasError).message).toMatch(message);
    expectClean();
  });

  it('cleans up after a start that fails, and after run of a missing binary', async () => {
    const c = await rt.create({
      rootfs: { lowers: [rootfs] },
      command: ['/no/such/binary'],
      net: 'bridge',
    });
    await rt.start(c.id).then(
      async () => rt.wait(c.id, { timeoutMs: 5000 }),
      () => undefined,
    );
    await rt.remove(c.id, { force: true });
    expect(
      (
        await rt.run(
          { rootfs: { lowers: [rootfs] }, command: ['/no/such/binary'], net: 'bridge' },
          { stdio: 'pipe' },
        )
      ).exitCode,
    ).toBe(127);
    expectClean();
  });
});

describe('limit syntax', () => {
  it('parses sizes, cpus and pids, and names the flag when wrong', () => {
    expect(parseMemory('64m')).toBe(64 * 1024 * 1024);
    expect(parseMemory('1g')).toBe(1024 ** 3);
    expect(parseMemory('256MiB')).toBe(256 * 1024 * 1024);
    expect(parseCpus('0.5')).toBe(0.5);
    expect(parsePids('64')).toBe(64);
    expect(() => parseMemory('12q', '--memory')).toThrow(/^--memory: "12q" is not a size/);
    expect(() => parseMemory('1k', '--memory')).toThrow(/below the 4m minimum/);
    expect(() => parseCpus('half', '--cpus')).toThrow(/^--cpus: "half" is not a number/);
    expect(() => parseCpus('0', '--cpus')).toThrow(/between 0.01/);
    expect(() => parsePids('-1', '--pids')).toThrow(/^--pids: /);
  });

  it('refuses an unknown runtime by name', () => {
    expect(() => createRuntime('crun', { dataDir: '/tmp/x' })).toThrow(
      /unknown runtime "crun": use one of native, runc/,
    );
  });
});

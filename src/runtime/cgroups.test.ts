import { describe, expect, it } from 'vitest';
import { Cgroup, detectCgroups, layoutFrom } from './cgroups.ts';

const V1 = [
  '30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,memory',
  '31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct',
  '32 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,pids',
];
const UNIFIED_EMPTY =
  '29 25 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw';
const V2 =
  '25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate';

describe('cgroup layout', () => {
  it('recognises pure v1, with co-mounted cpu,cpuacct', () => {
    const l = layoutFrom(V1.join('\n'), () => []);
    expect(l.mode).toBe('v1');
    expect(l.v1).toEqual({
      memory: '/sys/fs/cgroup/memory',
      cpu: '/sys/fs/cgroup/cpu,cpuacct',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
      pids: '/sys/fs/cgroup/pids',
    });
    const cg = new Cgroup('paas/x', l);
    expect(cg.dirs().sort()).toEqual([
      '/sys/fs/cgroup/cpu,cpuacct/paas/x',
      '/sys/fs/cgroup/memory/paas/x',
      '/sys/fs/cgroup/pids/paas/x',
    ]);
  });

  it('recognises hybrid: v1 controllers beside a v2 mount without controllers', () => {
    const l = layoutFrom([...V1, UNIFIED_EMPTY].join('\n'), () => ['hugetlb']);
    expect(l.mode).toBe('hybrid');
    expect(l.v2).toBe('/sys/fs/cgroup/unified');
    expect(new Cgroup('paas/x', l).dirs()).not.toContain('/sys/fs/cgroup/unified/paas/x');
  });

  it('recognises pure v2 and uses one directory', () => {
    const l = layoutFrom(V2, () => ['cpuset', 'cpu', 'io', 'memory', 'pids']);
    expect(l.mode).toBe('v2');
    expect(new Cgroup('paas/x', l).dirs()).toEqual(['/sys/fs/cgroup/paas/x']);
  });

  it('fails loudly when no memory controller exists anywhere', () => {
    expect(() => layoutFrom(UNIFIED_EMPTY, () => [])).toThrow(/no memory controller/);
  });

  it('detects this host', () => {
    expect(['v1', 'v2', 'hybrid']).toContain(detectCgroups().mode);
  });
});

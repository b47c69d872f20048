// Resource limits hold inside the container while the host and other containers carry on.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_DIR, tempDir, testRootfs } from '../../test/helpers/host.ts';
import { createRuntime } from './index.ts';
import type { Runtime, RuntimeName } from './types.ts';

describe.each(['native', 'runc'] as RuntimeName[])('limits on %s', (name) => {
  const tmp = tempDir(`limits-${name}`);
  let rt: Runtime;
  let rootfs: string;
  beforeAll(() => {
    rootfs = testRootfs();
    rt = createRuntime(name, {
      dataDir: tmp.dir,
      nativeDir: NATIVE_DIR,
      cgroupParent: `paastest-limits-${name}`,
    });
  });
  afterAll(async () => {
    for (const c of await rt.list()) await rt.remove(c.id, { force: true }).catch(() => undefined);
    tmp.cleanup();
  });

  it('stops a fork bomb at the pids limit while a neighbour keeps running', async () => {
    const neighbour = await rt.create({
      rootfs: { lowers: [rootfs] },
      command: ['sh', '-c', 'while true; do echo alive; sleep 0.2; done'],
    });
    await rt.start(neighbour.id);
    const bomb = await rt.create({
      rootfs: { lowers: [rootfs] },
      // Bounded: at most 400 forks, each child sleeping; the limit must stop it well before.
      command: [
        'sh',
        '-c',
        'i=0; while [ $i -lt 400 ]; do (sleep 30 &) 2>/dev/null; i=$((i+1)); done; echo done; sleep 30',
      ],
      limits: { pids: 32 },
    });
    await rt.start(bomb.id);
    await sleep(2500);
    const s = await rt.stats(bomb.id);
    expect(s.pids).toBeLessThanOrEqual(32);
    expect(s.pids).toBeGreaterThanOrEqual(20);
    expect((await rt.inspect(neighbour.id)).state).toBe('running');
    const r = await rt.exec(neighbour.id, { command: ['echo', 'still here'] });
    expect(r.stdout.trim()).toBe('still here');
    await rt.remove(bomb.id, { force: true });
    await rt.remove(neighbour.id, { force: true });
  });

  it('OOM-kills a memory hog inside its cgroup and reports it', async () => {
    const hog = await rt.create({
      rootfs: { lowers: [rootfs] },
      // Grows a shell variable to ~200 MB against a 32 MB limit.
      command: [
        'sh',
        '-c',
        'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while [ ${#x} -lt 200000000 ]; do x="$x$x"; done; echo survived',
      ],
      limits: { memoryBytes: 32 * 1024 * 1024 },
    });
    await rt.start(hog.id);
    const exit = await rt.wait(hog.id, { timeoutMs: 30_000 });
    expect(exit.exitCode).toBe(137);
    expect(exit.oomKilled).toBe(true);
    const other = await rt.run(
      { rootfs: { lowers: [rootfs] }, command: ['echo', 'fine'] },
      { stdio: 'pipe' },
    );
    expect(other.stdout.trim()).toBe('fine');
    await rt.remove(hog.id);
  });

  it('reaps zombies: orphans re-parented to PID 1 do not linger', async () => {
    const c = await rt.create({
      rootfs: { lowers: [rootfs] },
      command: ['sh', '-c', 'for i in 1 2 3 4 5; do (sleep 0.1 &); done; sleep 60'],
    });
    await rt.start(c.id);
    await sleep(1000);
    const ps = await rt.exec(c.id, { command: ['ps', '-o', 'stat,comm'] });
    expect(ps.exitCode).toBe(0);
    expect(ps.stdout.split('\n').filter((l) => l.trim().startsWith('Z'))).toEqual([]);
    await rt.remove(c.id, { force: true });
  });
});

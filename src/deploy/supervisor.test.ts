// The restart policy's counts outlive the daemon: a process killed twice is restarted twice,
// and a new daemon over the same data dir (new state, new supervisor, real containers that
// kept running) shows the same restarts, crash streak and last exit — until the slot starts
// fresh (ps:restart) or is scaled away.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  dropBridge,
  NATIVE_DIR,
  netnsNames,
  pinCgroup,
  runtimeWith,
  tempDir,
  testRootfs,
  waitFor,
} from '../../test/helpers/host.ts';
import {
  openState,
  parseAppName,
  parseProcessType,
  type AppName,
  type State,
} from '../apps/index.ts';
import { LogCollector, LogStore } from '../logs/index.ts';
import { openStore, type ImageStore } from '../registry/index.ts';
import { createRuntime, type Runtime } from '../runtime/index.ts';
import {
  adopt,
  converge,
  restartApp,
  scale,
  withSupervisor,
  type DeployDeps,
  type ProcView,
} from './index.ts';

const tmp = tempDir('supervisor');
const app = parseAppName('counted');
const worker = parseProcessType('worker');
let runtime: Runtime;
let store: ImageStore;
const daemons: { deps: DeployDeps; state: State }[] = [];

/** What the daemon wires at start, minus the API: a fresh state and supervisor over the data dir. */
function daemon(
  router: DeployDeps['router'] = {
    switch: async () => ({ drained: true }),
    setRoutes: async () => ({ drained: true }),
  },
  rt: Runtime = runtime,
): DeployDeps {
  const state = openState(tmp.dir);
  const logs = new LogStore({ dir: join(tmp.dir, 'logs', 'apps') });
  const deps = withSupervisor(
    {
      dataDir: tmp.dir,
      domain: 'paas.test',
      httpPort: 0,
      state,
      logs,
      collector: new LogCollector(logs, {}),
      runtime: rt,
      store,
      router,
      build: () => Promise.reject(new Error('no builds here')),
      stopGraceMs: 1000,
    },
    { baseMs: 200, capMs: 400, crashLoop: 3, stableMs: 30_000 },
  );
  daemons.push({ deps, state });
  return deps;
}

/** kill -9 of the daemon as far as the state goes: nothing more is written, containers keep running. */
function kill(deps: DeployDeps): void {
  deps.supervisor.stop();
  deps.state.close();
}

const only = (deps: DeployDeps): ProcView => {
  const procs = deps.supervisor.list(app);
  expect(procs.map((p) => `${p.type}.${p.n}`)).toEqual(['worker.1']);
  return procs[0]!;
};
const running = (deps: DeployDeps, restarts: number) =>
  waitFor(`worker.1 running after ${restarts} restarts`, () =>
    deps.supervisor.list(app).find((p) => p.state === 'running' && p.restarts === restarts),
  );
const history = (p: ProcView) => ({
  restarts: p.restarts,
  crashes: p.crashes,
  lastExit: p.lastExit,
  state: p.state,
});

/** An app whose live release runs one `worker` process: `sh -c script` in busybox. */
function createApp(name: AppName, script: string): void {
  const state = openState(tmp.dir);
  state.apps.create(name);
  const rel = state.releases.create(
    name,
    {
      image: 'busybox',
      imageDigest: 'sha256:test',
      processes: { worker: ['/bin/sh', '-c', script] },
      gitSha: 'a'.repeat(40),
      buildId: null,
      description: 'test',
    },
    {},
  );
  state.releases.markDeploying(name, rel.version);
  state.releases.finishDeploy(name, rel.version, { ok: true });
  state.apps.setFormation(name, worker, 1);
  state.close();
}

beforeAll(async () => {
  runtime = createRuntime('native', {
    dataDir: tmp.dir,
    nativeDir: NATIVE_DIR,
    bridge: 'paastest3',
    subnet: '10.79.3.0/24',
    networkStateDir: tmp.dir,
    cgroupParent: 'paastest-supervisor',
  });
  store = await openStore(tmp.dir);
  await store.importRootfs(testRootfs(), 'library/busybox:latest', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
  createApp(app, 'exec sleep 100000');
});

afterAll(async () => {
  for (const d of daemons) d.deps.supervisor.stop();
  // stop() does not wait for a restart already under way: a container it was creating can
  // appear after a first sweep. Sweep until nothing of ours is left (bounded: 40 rounds).
  for (let i = 0; i < 40; i++) {
    for (const c of await runtime.list())
      await runtime.remove(c.id, { force: true }).catch(() => undefined);
    if (cgroupDirs('paastest-supervisor').length === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const d of daemons) {
    try {
      d.state.close();
    } catch {
      // closed by kill()
    }
  }
  dropBridge('paastest3');
  expect(cgroupDirs('paastest-supervisor')).toEqual([]);
  tmp.cleanup();
});

describe('restart history across daemon restarts', () => {
  it('a new daemon adopting the running process shows its restarts, crash streak and last exit', async () => {
    const first = daemon();
    await converge(first, app);
    expect(history(only(first))).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
      state: 'running',
    });
    for (let i = 1; i <= 2; i++) {
      await runtime.kill(only(first).id, 'SIGKILL');
      await running(first, i);
    }
    const before = only(first);
    expect(history(before)).toEqual({
      restarts: 2,
      crashes: 2,
      lastExit: 'was killed by SIGKILL',
      state: 'running',
    });
    kill(first);

    const second = daemon();
    const report = await adopt(second, () => undefined);
    expect(report).toMatchObject({ adopted: 1, restarted: 0 });
    const adopted = only(second);
    expect(adopted.id).toBe(before.id);
    expect(history(adopted)).toEqual({
      restarts: 2,
      crashes: 2,
      lastExit: 'was killed by SIGKILL',
      state: 'running',
    });
    // The streak goes on from there: one more crash is the third in a row.
    await runtime.kill(adopted.id, 'SIGKILL');
    await waitFor('the third crash', () => only(second).crashes === 3);
    expect(only(second).state).toBe('crashed');
    await running(second, 3);
    expect(only(second).lastExit).toBe('was killed by SIGKILL');
    kill(second);
  });

  it('a process that died while the daemon was down is started again as one more restart', async () => {
    const gone = (await runtime.list()).filter((c) => c.labels.app === app);
    expect(gone).toHaveLength(1);
    await runtime.kill(gone[0]!.id, 'SIGKILL');
    await waitFor(
      'the container to exit',
      async () => (await runtime.inspect(gone[0]!.id)).state !== 'running',
    );
    const third = daemon();
    expect(await adopt(third, () => undefined)).toMatchObject({ adopted: 0, restarted: 1 });
    const p = await running(third, 4);
    expect(p.id).not.toBe(gone[0]!.id);
    expect(history(p)).toMatchObject({
      restarts: 4,
      crashes: 3,
      lastExit: 'was killed by SIGKILL',
    });
    kill(third);
  });

  it('ps:restart starts the slot fresh, and a slot scaled away and back starts with none', async () => {
    const fourth = daemon();
    await adopt(fourth, () => undefined);
    expect(only(fourth).restarts).toBe(4);
    await restartApp(fourth, app);
    expect(history(only(fourth))).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
      state: 'running',
    });
    await runtime.kill(only(fourth).id, 'SIGKILL');
    await running(fourth, 1);
    await scale(fourth, app, new Map([[worker, 0]]));
    await scale(fourth, app, new Map([[worker, 1]]));
    expect(history(only(fourth))).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
      state: 'running',
    });
    kill(fourth);
    const fifth = daemon();
    await adopt(fifth, () => undefined);
    expect(history(only(fifth))).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
      state: 'running',
    });
    kill(fifth);
  });

  it('a container that cannot be removed is stopped, said in the log, and retired by the next start', async () => {
    const sixth = daemon();
    await adopt(sixth, () => undefined);
    const { id } = only(sixth);
    const unpin = pinCgroup('paastest-supervisor', id);
    try {
      await scale(sixth, app, new Map([[worker, 0]]));
      expect(sixth.supervisor.list(app)).toEqual([]);
      expect((await runtime.inspect(id)).state).not.toBe('running');
      expect(netnsNames()).not.toContain(`paas-${id}`);
      const said = sixth.logs.tail(app, 50).map((l) => l.text);
      expect(said.filter((t) => t.startsWith(`could not remove container ${id}:`))).toHaveLength(1);
    } finally {
      unpin();
    }
    kill(sixth);
    const seventh = daemon();
    expect(await adopt(seventh, () => undefined)).toMatchObject({ adopted: 0, retired: 1 });
    await expect(runtime.inspect(id)).rejects.toThrow(/no container/);
    kill(seventh);
  });
});

describe("rotation is the supervisor's: setRotation changes it and routes, in one switch", () => {
  it('puts web processes in, swaps old for new without an empty backend set, takes them out', async () => {
    const switches: string[][] = [];
    const deps = daemon({
      switch: async (_app, backends) => {
        switches.push(backends.map((b) => b.id ?? '?'));
        return { drained: true };
      },
      setRoutes: async () => ({ drained: true }),
    });
    const web = parseAppName('rotated');
    deps.state.apps.create(web);
    const rel = deps.state.releases.create(
      web,
      {
        image: 'busybox',
        imageDigest: 'sha256:test',
        processes: { web: ['/bin/sh', '-c', 'mkdir -p /www && exec httpd -f -p "$PORT" -h /www'] },
        gitSha: 'b'.repeat(40),
        buildId: null,
        description: 'test',
      },
      {},
    );
    const sup = deps.supervisor;
    const first = await sup.launch(rel, 'web', 1);
    expect(first.inRotation).toBe(false);
    expect(sup.backends(web)).toEqual([]);

    await sup.setRotation({ into: [first] });
    expect(switches).toEqual([['web.1@v1']]);
    expect(sup.list(web).map((p) => p.inRotation)).toEqual([true]);

    // A rolling replacement of the same slot: one switch straight from old to new.
    const second = await sup.launch(rel, 'web', 1);
    await sup.setRotation({ into: [second], outOf: [first] });
    expect(switches).toEqual([['web.1@v1'], ['web.1@v1']]);
    expect(sup.backends(web).map((b) => b.host)).toEqual([second.ip]);

    // Nothing changed, nothing routed; out of rotation routes the empty set once.
    await sup.setRotation({ into: [second] });
    expect(switches.length).toBe(2);
    await sup.retire(first, 0);
    await sup.setRotation({ outOf: [second] });
    expect(switches).toEqual([['web.1@v1'], ['web.1@v1'], []]);
    await sup.retire(second, 0);
    expect(sup.list(web)).toEqual([]);
    deps.supervisor.stop();
  });
});

/**
 * An inspect of `app`'s containers that, from a second after the start on (the uptime check's
 * probe), answers only once the process has ended: with how it ended (`ended`), or with what
 * it saw when asked (`asked`: an answer that arrives late, after the exit was reported).
 */
function inspectAfterExit(app: AppName, answer: 'ended' | 'asked'): Runtime['inspect'] {
  return async (id) => {
    const info = await runtime.inspect(id);
    const up = info.startedAt === null ? 0 : Date.now() - Date.parse(info.startedAt);
    if (info.labels.app !== app || info.state !== 'running' || up < 900) return info;
    await runtime.wait(id, { timeoutMs: 10_000 }).catch(() => undefined);
    if (answer === 'ended') return runtime.inspect(id);
    await new Promise((r) => setTimeout(r, 300));
    return info;
  };
}

describe('a process that ends during its start check', () => {
  it('is logged and shown by how it ended, as a crash after the check is, not as a web check', async () => {
    const doomed = parseAppName('doomed');
    createApp(doomed, 'echo dying; exit 3');
    // On a busy box the shell may not reach its `exit` within the check's second; the check
    // then sees the exit when it comes, so the process always ends during its check.
    const d = daemon(
      undefined,
      runtimeWith(runtime, { inspect: inspectAfterExit(doomed, 'ended') }),
    );
    await converge(d, doomed);
    const ended = 'exited with code 3 before it stayed up for 1s';
    // The first start (by converge) and a restart (by the policy) both end in their check.
    const said = await waitFor('a restart that ended too', () => {
      const lines = d.logs.tail(doomed, 50).map((l) => l.text);
      return lines.filter((t) => t.startsWith(`worker.1: v1 ${ended}; `)).length >= 2
        ? lines
        : null;
    });
    expect(said).toContain(`worker.1: v1 ${ended}; restarting now`);
    expect(said.filter((t) => /HTTP|port|failed to restart/.test(t))).toEqual([]);
    expect(d.supervisor.list(doomed)[0]?.lastExit).toBe(ended);
    await scale(d, doomed, new Map([[worker, 0]]));
    kill(d);
  });
});

describe('an exit that the wait delivers after the start check reported it', () => {
  it('is one crash and one restart, not two', async () => {
    const late = parseAppName('late');
    createApp(late, 'echo dying; exit 4');
    // On a busy box the runtime's wait can hand over an exit after the check saw it (the
    // check inspects the container itself). This runtime always does: its wait resolves only
    // once the slot is no longer starting with that container. Its check sees each exit, however
    // late the shell reaches it (inspectAfterExit).
    let d: DeployDeps | null = null;
    d = daemon(
      undefined,
      runtimeWith(runtime, {
        inspect: inspectAfterExit(late, 'ended'),
        wait: async (id, opts) => {
          const exit = await runtime.wait(id, opts);
          await waitFor('the check to report the exit', () =>
            d?.supervisor.list(late).every((p) => p.id !== id || p.state !== 'starting'),
          );
          return exit;
        },
      }),
    );
    await converge(d, late);
    const crashes = await waitFor('three crashes', () => {
      const lines = d.logs.tail(late, 50).map((l) => l.text);
      const ended = lines.filter((t) => t.startsWith('worker.1: v1 exited'));
      return ended.length >= 3 ? { lines, ended } : null;
    });
    const ended = 'worker.1: v1 exited with code 4 before it stayed up for 1s';
    expect(crashes.ended.slice(0, 3)).toEqual([
      `${ended}; restarting now`,
      `${ended}; restarting in 0.2s`,
      `${ended}; restarting in 0.4s`,
    ]);
    expect(crashes.lines.filter((t) => /failed to restart/.test(t))).toEqual([]);
    await scale(d, late, new Map([[worker, 0]]));
    kill(d);
  });
});

describe('a wait that fails for another reason than a timeout', () => {
  it('is tried again, so a crash after it is still restarted', async () => {
    const watched = parseAppName('watched');
    createApp(watched, 'exec sleep 100000');
    // The runtime's wait watches the bundle with inotify; out of watches, it throws.
    let failures = 1;
    const d = daemon(
      undefined,
      runtimeWith(runtime, {
        wait: (id, opts) => {
          if (failures-- > 0)
            return Promise.reject(
              new Error('ENOSPC: System limit for number of file watchers reached'),
            );
          return runtime.wait(id, opts);
        },
      }),
    );
    await converge(d, watched);
    const first = d.supervisor.list(watched)[0]!;
    const firstId = first.id; // the view is the slot's: its id changes with a restart
    expect(first.state).toBe('running');
    // The slot's first wait failed; the next one is the one that sees the crash.
    await waitFor('the wait to be tried again', () => failures < 0, 30_000);
    await runtime.kill(firstId, 'SIGKILL');
    const restarted = await waitFor(
      'the crash to be restarted',
      () => d.supervisor.list(watched).find((p) => p.state === 'running' && p.restarts === 1),
      30_000,
    );
    expect(restarted.id).not.toBe(firstId);
    expect(restarted.lastExit).toBe('was killed by SIGKILL');
    await scale(d, watched, new Map([[worker, 0]]));
    kill(d);
  });
});

describe('a process that passes its start check and ends before it is marked running', () => {
  it('is a crash, restarted, not a running slot with no process behind it', async () => {
    const brief = parseAppName('brief');
    createApp(brief, 'sleep 1.2; exit 7');
    // The uptime check's last inspect (at 1 s) sees it running; its answer arrives only after
    // the process ended and the supervisor's wait reported the exit, as an inspect slowed
    // down on a busy box can.
    const d = daemon(
      undefined,
      runtimeWith(runtime, { inspect: inspectAfterExit(brief, 'asked') }),
    );
    await converge(d, brief);
    await waitFor(
      'the first exit to be restarted',
      () => d.supervisor.list(brief).find((p) => p.restarts >= 1),
      30_000,
    );
    const said = d.logs.tail(brief, 50).map((l) => l.text);
    expect(said).toContain('worker.1: v1 exited with code 7; restarting now');
    await scale(d, brief, new Map([[worker, 0]]));
    kill(d);
  });
});

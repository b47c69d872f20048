// The contract every Scheduler backend keeps (STYLE.md §4): run by local.test.ts and
// swarm.test.ts against their backend, the same cases for both. Each backend's test brings
// its own real parts (runtime or Swarm, image store or registry); the cases drive only the
// Scheduler interface and the state, as the pipeline does, and reach web processes at the
// addresses the scheduler reports, as the router does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/helpers/host.ts';
import {
  parseAppName,
  parseProcessType,
  type AppName,
  type Release,
  type State,
} from '../apps/index.ts';
import { DeployFailed } from '../errors/index.ts';
import type { Output } from '../deploy/index.ts';
import type { Backend } from '../router/index.ts';
import { followRoutes, type Address, type Scheduler, type SchedulerName } from './index.ts';

export interface ContractRig {
  scheduler: Scheduler;
  state: State;
  /** The image reference releases name (already where the backend pulls from). */
  image: string;
  cleanup(): Promise<void>;
}

// busybox's httpd serves what the process saw at start: its config var and release.
const WEB = [
  '/bin/sh',
  '-c',
  'mkdir -p /tmp/w && echo "$GREETING from $PAAS_RELEASE" > /tmp/w/index.html && exec httpd -f -p "$PORT" -h /tmp/w',
];
const WORKER = ['/bin/sh', '-c', 'echo "worker says $GREETING"; exec sleep 100000'];
const BROKEN_WEB = ['/bin/sh', '-c', 'echo "broken on purpose" >&2; exit 1'];

export function schedulerContract(name: SchedulerName, rig: () => Promise<ContractRig>): void {
  describe(`Scheduler contract: ${name}`, () => {
    const app: AppName = parseAppName(`sched-${name}`);
    let r: ContractRig;
    const said: string[] = [];
    const out: Output = { write: (t) => void said.push(t) };

    /** What the pipeline does around a scheduler's deploy. */
    async function deploy(
      processes: Record<string, string[]>,
      config: Record<string, string>,
      appJson: Release['appJson'] = {},
    ) {
      r.state.apps.replaceConfig(app, { ...r.state.apps.config(app), ...config });
      const rel = r.state.releases.create(
        app,
        {
          image: r.image,
          imageDigest: 'sha256:contract',
          processes,
          gitSha: 'c'.repeat(40),
          buildId: null,
          description: 'contract',
          appJson,
        },
        r.state.apps.config(app),
      );
      r.state.releases.markDeploying(app, rel.version);
      try {
        await r.scheduler.deploy(rel, out, () =>
          r.state.releases.finishDeploy(app, rel.version, { ok: true }),
        );
      } catch (e) {
        r.state.releases.finishDeploy(app, rel.version, { ok: false, error: String(e) });
        throw e;
      }
      return rel;
    }

    async function page(a: Address): Promise<string> {
      const res = await fetch(`http://${a.host}:${a.port}/`, { signal: AbortSignal.timeout(5000) });
      return (await res.text()).trim();
    }

    const shape = async () =>
      (await r.scheduler.processes(app)).map((p) => `${p.type}.${p.n}@v${p.version}`);

    async function pages(): Promise<string[]> {
      const web = (await r.scheduler.processes(app)).filter((p) => p.type === 'web');
      return Promise.all(web.map((p) => page(p.address!)));
    }

    beforeAll(async () => {
      r = await rig();
      r.state.apps.create(app);
      r.state.apps.setFormation(app, parseProcessType('web'), 2);
      r.state.apps.setFormation(app, parseProcessType('worker'), 1);
    });
    afterAll(async () => {
      await r?.scheduler.destroy(app).catch(() => undefined);
      await r?.cleanup();
    });

    it('deploys the formation: web processes serve at the addresses it reports, with the config', async () => {
      await deploy({ web: WEB, worker: WORKER }, { GREETING: 'hello' });
      expect(await shape()).toEqual(['web.1@v1', 'web.2@v1', 'worker.1@v1']);
      const procs = await r.scheduler.processes(app);
      expect(procs.every((p) => p.state === 'running')).toBe(true);
      expect(procs.find((p) => p.type === 'worker')!.address).toBeNull();
      expect(await pages()).toEqual(['hello from v1', 'hello from v1']);
      expect(r.state.apps.get(app).liveRelease).toBe(1);
    });

    it("hands out the processes' output as logs", async () => {
      const line = await waitFor(
        'the worker line in the logs',
        async () =>
          (await r.scheduler.logs(app, 200)).find((l) => l.text.includes('worker says hello')),
        60_000,
        500,
      );
      expect(line.ps).toBe('worker.1');
    });

    it('a release whose web fails its check is rolled back and fails; the old one keeps serving', async () => {
      await expect(deploy({ web: BROKEN_WEB, worker: WORKER }, {})).rejects.toBeInstanceOf(
        DeployFailed,
      );
      expect(r.state.apps.get(app).liveRelease).toBe(1);
      expect(await shape()).toEqual(['web.1@v1', 'web.2@v1', 'worker.1@v1']);
      expect(await pages()).toEqual(['hello from v1', 'hello from v1']);
    });

    it("a release whose web serves but fails app.json's path check is rolled back too", async () => {
      const checks = { healthchecks: { web: [{ path: '/health', attempts: 2, wait: 1 }] } };
      await expect(deploy({ web: WEB, worker: WORKER }, {}, checks)).rejects.toBeInstanceOf(
        DeployFailed,
      );
      expect(r.state.apps.get(app).liveRelease).toBe(1);
      expect(await shape()).toEqual(['web.1@v1', 'web.2@v1', 'worker.1@v1']);
      expect(await pages()).toEqual(['hello from v1', 'hello from v1']);
    });

    it('rolls every process over to a new release; the old ones are gone', async () => {
      await deploy({ web: WEB, worker: WORKER }, { GREETING: 'bonjour' });
      expect(await shape()).toEqual(['web.1@v4', 'web.2@v4', 'worker.1@v4']);
      expect(await pages()).toEqual(['bonjour from v4', 'bonjour from v4']);
      expect(r.state.apps.get(app).liveRelease).toBe(4);
    });

    it('a router following the scheduler routes to the new release, and switches only on change', async () => {
      const switched: { app: string; backends: Backend[] }[] = [];
      const follower = followRoutes(
        r.scheduler,
        { switch: async (a, backends) => (switched.push({ app: a, backends }), { drained: true }) },
        () => [app],
        { everyMs: 0 },
      );
      await follower.sync();
      await follower.sync();
      expect(switched).toHaveLength(1);
      const backends = switched[0]!.backends;
      expect(backends.map((b) => b.id)).toEqual(['web.1@v4', 'web.2@v4']);
      const bodies = await Promise.all(backends.map((b) => page(b)));
      expect(bodies).toEqual(['bonjour from v4', 'bonjour from v4']);
      follower.stop();
    });

    it('scales a type up and another to zero', async () => {
      const f = await r.scheduler.scale(
        app,
        new Map([
          [parseProcessType('web'), 3],
          [parseProcessType('worker'), 0],
        ]),
      );
      expect(f).toMatchObject({ web: 3, worker: 0 });
      const want = ['web.1@v4', 'web.2@v4', 'web.3@v4'];
      await waitFor(
        'three web processes and no worker',
        async () => (JSON.stringify(await shape()) === JSON.stringify(want) ? true : null),
        60_000,
        250,
      );
      expect(await pages()).toEqual(['bonjour from v4', 'bonjour from v4', 'bonjour from v4']);
    });

    it('runs a one-off process of the release with its config and returns its exit code', async () => {
      const release = r.state.releases.get(app, 4);
      let stdout = '';
      const code = await r.scheduler.run(
        release,
        ['/bin/sh', '-c', 'echo "run: $GREETING"; exit 3'],
        {
          onData: (s, b) => {
            if (s === 'stdout') stdout += b.toString();
          },
          signal: new AbortController().signal,
        },
      );
      expect(code).toBe(3);
      expect(stdout).toContain('run: bonjour');
    });

    it('destroys every process of the app', async () => {
      await r.scheduler.destroy(app);
      expect(await r.scheduler.processes(app)).toEqual([]);
    });

    it("said what it did on the pusher's output", () => {
      expect(said.join('')).toMatch(/web/);
    });
  });
}

// The scheduler contract on `local`: our own runtime (native) and supervisor on this box.
import { join } from 'node:path';
import { dropBridge, NATIVE_DIR, tempDir, testRootfs } from '../../test/helpers/host.ts';
import { openState } from '../apps/index.ts';
import { withSupervisor } from '../deploy/index.ts';
import { LogCollector, LogStore } from '../logs/index.ts';
import { openStore } from '../registry/index.ts';
import { createRuntime } from '../runtime/index.ts';
import { schedulerContract } from './contract.case.ts';
import { localScheduler } from './index.ts';

schedulerContract('local', async () => {
  const tmp = tempDir('sched-local');
  const runtime = createRuntime('native', {
    dataDir: tmp.dir,
    nativeDir: NATIVE_DIR,
    bridge: 'paastest22',
    subnet: '10.79.22.0/24',
    networkStateDir: tmp.dir,
    cgroupParent: 'paastest-sched-local',
  });
  const store = await openStore(tmp.dir);
  await store.importRootfs(testRootfs(), 'library/busybox:latest', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
  const state = openState(tmp.dir);
  const logs = new LogStore({ dir: join(tmp.dir, 'logs', 'apps') });
  const collector = new LogCollector(logs, {});
  collector.start();
  const deps = withSupervisor({
    dataDir: tmp.dir,
    domain: 'paas.test',
    httpPort: 0,
    state,
    logs,
    collector,
    runtime,
    store,
    // The route itself is the router's contract; here the addresses `processes` reports are.
    router: { switch: async () => ({ drained: true }), setRoutes: async () => ({ drained: true }) },
    build: () => Promise.reject(new Error('no builds here')),
    startTimeoutMs: 20_000,
    stopGraceMs: 1000,
  });
  return {
    scheduler: localScheduler(deps),
    state,
    image: 'busybox',
    async cleanup() {
      deps.supervisor.stop();
      collector.stop();
      for (const c of await runtime.list())
        await runtime.remove(c.id, { force: true }).catch(() => undefined);
      state.close();
      dropBridge('paastest22');
      tmp.cleanup();
    },
  };
});

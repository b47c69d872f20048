// A service is watched like an app process: a container that dies is replaced after a
// backoff, a wait that fails is waited again, and a replacement the runtime cannot make is
// tried again (it used to be logged
// once and given up, leaving the database down until the daemon restarted). Real containers
// of our runtime; the image is busybox with a stand-in redis-server that sleeps, and the
// runtime refuses to create, or fails a wait, on demand.
import { chmodSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  dropBridge,
  NATIVE_DIR,
  runtimeWith,
  tempDir,
  testRootfs,
  waitFor,
} from '../../test/helpers/host.ts';
import { openState, type State } from '../apps/index.ts';
import { RuntimeError } from '../errors/index.ts';
import { openStore, type ImageStore } from '../registry/index.ts';
import { createRuntime, type Runtime } from '../runtime/index.ts';
import { parseServiceName, ServiceManager, type ServiceName } from './index.ts';

const tmp = tempDir('services-restart');
const BRIDGE = 'paastest6';
const CGROUP = 'paastest-services';
let runtime: Runtime;
let store: ImageStore;
let state: State;

beforeAll(async () => {
  runtime = createRuntime('native', {
    dataDir: tmp.dir,
    nativeDir: NATIVE_DIR,
    bridge: BRIDGE,
    subnet: '10.79.6.0/24',
    networkStateDir: tmp.dir,
    cgroupParent: CGROUP,
  });
  store = await openStore(tmp.dir);
  // redis:7 as our base image runs it (kinds.ts): `redis-server <conf>` and `redis-cli … ping`.
  const rootfs = join(tmp.dir, 'rootfs');
  cpSync(testRootfs(), rootfs, { recursive: true, verbatimSymlinks: true });
  for (const [name, body] of [
    ['redis-server', 'exec sleep 100000'],
    ['redis-cli', 'echo PONG'],
  ] as const) {
    writeFileSync(join(rootfs, 'bin', name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(rootfs, 'bin', name), 0o755);
  }
  await store.importRootfs(rootfs, 'library/redis:7', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['redis-server'],
  });
  state = openState(tmp.dir);
});

afterAll(async () => {
  for (const c of await runtime.list())
    await runtime.remove(c.id, { force: true }).catch(() => undefined);
  state.close();
  dropBridge(BRIDGE);
  expect(cgroupDirs(CGROUP)).toEqual([]);
  tmp.cleanup();
});

/**
 * A daemon's service manager over a runtime that refuses the next `refuse.n` creates, and
 * fails the next `refuse.waits` waits (as one out of inotify watches does).
 */
function manager() {
  const refuse = { n: 0, waits: 0, waitCalls: 0 };
  const creates: string[] = [];
  const flaky = runtimeWith(runtime, {
    wait: (...a) => {
      refuse.waitCalls++;
      if (refuse.waits > 0) {
        refuse.waits--;
        return Promise.reject(
          new Error('ENOSPC: System limit for number of file watchers reached'),
        );
      }
      return runtime.wait(...a);
    },
    create: (spec) => {
      creates.push(spec.id ?? '');
      if (refuse.n > 0) {
        refuse.n--;
        return Promise.reject(new RuntimeError('no cgroup for you', {}));
      }
      return runtime.create(spec);
    },
  });
  const logged: string[] = [];
  const services = new ServiceManager({
    dataDir: tmp.dir,
    db: state.db,
    runtime: flaky,
    store,
    backoff: (n) => (n <= 1 ? 0 : 100),
    log: (msg) => logged.push(msg),
  });
  return { services, refuse, creates, logged };
}

/** The service's running container once it is not `old` (bounded). */
function replaced(services: ServiceManager, name: ServiceName, old?: string) {
  return waitFor(
    'a new running container',
    async () => {
      const c = (await services.status(name)).container;
      return c !== null && c.id !== old && c.state === 'running' ? c : null;
    },
    30_000,
  );
}

describe('a service whose container died', () => {
  it('is started again when the runtime refuses the first replacement', async () => {
    const { services, refuse, creates, logged } = manager();
    const name = parseServiceName('cache');
    await services.create('redis', name, () => undefined);
    const first = (await services.status(name)).container!;
    expect(first.state).toBe('running');

    refuse.n = 1;
    await runtime.kill(first.id, 'SIGKILL');
    const next = await replaced(services, name, first.id);
    expect(logged).toEqual(['service exited; restarting', 'service did not start; retrying']);
    expect(creates).toHaveLength(3); // the service, the refused replacement, the one that ran
    expect(creates[2]).toBe(next.id);
    expect((await services.status(name)).restarts).toBe(1);

    await services.destroy(name);
    services.stop();
    expect(await services.containers(name)).toEqual([]);
  });
});

describe('a service with no container when the daemon starts', () => {
  it('is started again when the runtime refuses the first start', async () => {
    const name = parseServiceName('later');
    const before = manager();
    await before.services.create('redis', name, () => undefined);
    before.services.stop();
    // The box rebooted: the data and the service's record are there, its container is not.
    for (const c of await before.services.containers(name))
      await runtime.remove(c.id, { force: true });

    const { services, refuse, creates, logged } = manager();
    refuse.n = 1;
    expect(await services.adoptAll()).toEqual({ adopted: 0, started: 0 });
    const next = await replaced(services, name);
    expect(logged).toEqual(['service did not start; retrying']);
    expect(creates).toHaveLength(2);
    expect(creates[1]).toBe(next.id);

    await services.destroy(name);
    services.stop();
    expect(await services.containers(name)).toEqual([]);
  });
});

describe('a service whose exit the runtime could not wait for', () => {
  it('waits again, and is restarted when its container dies after that', async () => {
    const name = parseServiceName('watched');
    const { services, refuse, logged } = manager();
    refuse.waits = 1;
    await services.create('redis', name, () => undefined);
    const first = (await services.status(name)).container!;
    await waitFor('the wait to be tried again', () => refuse.waitCalls >= 2, 30_000);
    await runtime.kill(first.id, 'SIGKILL');
    await replaced(services, name, first.id);
    expect(logged).toEqual(['service exited; restarting']);

    await services.destroy(name);
    services.stop();
  });
});

// The scheduler contract on `swarm`: a single-node Docker Swarm (test/helpers/swarm.ts)
// whose node pulls the release images from our registry, served from the image store on
// loopback with a token, as the daemon serves it.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tempDir, testRootfs } from '../../test/helpers/host.ts';
import { startSwarm } from '../../test/helpers/swarm.ts';
import { openState } from '../apps/index.ts';
import { LogStore } from '../logs/index.ts';
import { basicAuthPassword, createRegistryHandler, openStore } from '../registry/index.ts';
import { schedulerContract } from './contract.case.ts';
import { Engine } from './index.ts';
import { SwarmScheduler } from './swarm.ts';

const pulls = { authorized: 0, refused: 0 };

schedulerContract('swarm', async () => {
  const tmp = tempDir('sched-swarm');
  const swarm = await startSwarm();
  const store = await openStore(tmp.dir);
  await store.importRootfs(testRootfs(), 'library/busybox:latest', {
    Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
  const token = randomBytes(16).toString('hex');
  const registry = createRegistryHandler({
    store,
    realm: 'paas',
    authenticate: (req) => basicAuthPassword(req) === token,
  });
  const server: Server = createServer((req, res) => {
    if (/\/manifests\//.test(req.url ?? ''))
      pulls[basicAuthPassword(req) === token ? 'authorized' : 'refused']++;
    registry(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const state = openState(tmp.dir);
  const scheduler = new SwarmScheduler({
    state,
    store,
    logs: new LogStore({ dir: join(tmp.dir, 'logs', 'apps') }),
    engine: new Engine(swarm.socket),
    // Docker trusts plain HTTP to 127.0.0.0/8 registries; remote nodes need TLS (docs/scaling.md).
    registry: `127.0.0.1:${port}`,
    token,
    stopGraceMs: 1000,
    monitorMs: 2000,
    startTimeoutMs: 90_000,
  });
  return {
    scheduler,
    state,
    image: 'library/busybox:latest',
    async cleanup() {
      await swarm.stop();
      server.close();
      state.close();
      tmp.cleanup();
    },
  };
});

describe('swarm nodes pull from our registry', () => {
  it('fetched the release image with the token', () => {
    expect(pulls.authorized).toBeGreaterThan(0);
  });
});

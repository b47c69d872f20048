// What paas asks of Swarm for one process type, field by field (issue 22): the service name,
// replicas from the formation, the release's image from our registry, config vars as env,
// limits as service limits, restart on failure, start-first updates that roll back.
import { describe, expect, it } from 'vitest';
import { parseAppName, type Release } from '../apps/index.ts';
import { registryAuth, serviceName, serviceSpec } from './index.ts';

const release = {
  app: parseAppName('shop'),
  version: 7,
  image: 'shop:v7',
  processes: { web: ['node', 'server.js'], worker: ['node', 'worker.js'] },
  config: { GREETING: 'hi' },
  appJson: {},
} as unknown as Release;

const base = {
  release,
  image: '10.0.0.1:7070/shop:v7',
  env: { GREETING: 'hi', PORT: '5000' },
  replicas: 3,
  limits: { memoryBytes: 256 * 1024 * 1024, cpus: 0.5, pids: 100 },
  stopGraceMs: 30_000,
  monitorMs: 5000,
};

describe('serviceSpec', () => {
  it('makes a web process type a replicated service with a host-mode port and rolling updates', () => {
    const s = serviceSpec({ ...base, type: 'web', command: ['node', 'server.js'], port: 5000 });
    expect(s).toMatchObject({
      Name: 'shop_web',
      Labels: { 'paas.app': 'shop', 'paas.type': 'web', 'paas.release': 'v7' },
      Mode: { Replicated: { Replicas: 3 } },
      TaskTemplate: {
        ContainerSpec: {
          Image: '10.0.0.1:7070/shop:v7',
          Command: ['node', 'server.js'],
          Env: ['GREETING=hi', 'PORT=5000'],
          Hostname: 'shop.web.{{.Task.Slot}}',
          StopGracePeriod: 30_000_000_000,
        },
        Resources: { Limits: { MemoryBytes: 268435456, NanoCPUs: 500_000_000, Pids: 100 } },
        RestartPolicy: { Condition: 'on-failure' },
      },
      UpdateConfig: { Order: 'start-first', FailureAction: 'rollback', Parallelism: 1 },
      RollbackConfig: { Order: 'start-first' },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 5000, PublishMode: 'host' }] },
    });
  });

  it('publishes nothing for other types, and leaves out limits nobody set', () => {
    const s = serviceSpec({
      ...base,
      type: 'worker',
      command: ['node', 'worker.js'],
      port: null,
      replicas: 0,
      limits: { memoryBytes: 1024 },
    });
    expect(s.EndpointSpec).toEqual({ Mode: 'dnsrr' });
    expect(s.Mode).toEqual({ Replicated: { Replicas: 0 } });
    expect((s.TaskTemplate as { Resources: unknown }).Resources).toEqual({
      Limits: { MemoryBytes: 1024 },
    });
    expect(serviceName('shop', 'worker')).toBe('shop_worker');
  });

  it('hands the nodes registry credentials as X-Registry-Auth (base64url JSON)', () => {
    const h = registryAuth('10.0.0.1:7070', 'paas', 'tok');
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({
      username: 'paas',
      password: 'tok',
      serveraddress: '10.0.0.1:7070',
    });
  });

  it("pads X-Registry-Auth as Go's base64.URLEncoding does: the engine drops unpadded credentials", () => {
    // Every length modulo 3: two of them need padding.
    const all = ['t', 'to', 'tok'].map((token) => registryAuth('10.0.0.1:7070', 'paas', token));
    for (const h of all) {
      expect(h).toMatch(/^[A-Za-z0-9_-]+={0,2}$/);
      expect(h.length % 4).toBe(0);
    }
    expect(all.filter((h) => h.endsWith('='))).toHaveLength(2);
  });

  it('holds the stop of a routed web task (SIGCONT) and of nothing else', () => {
    const spec = (s: Record<string, unknown>) =>
      (s.TaskTemplate as { ContainerSpec: { StopSignal?: string } }).ContainerSpec.StopSignal;
    const web = { ...base, type: 'web', command: ['node', 'server.js'], port: 5000 };
    expect(spec(serviceSpec({ ...web, holdStop: true }))).toBe('SIGCONT');
    expect(spec(serviceSpec(web))).toBeUndefined();
  });
});

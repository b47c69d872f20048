import { defineConfig } from 'vitest/config';

// The router's contract suite: run once per data plane (src/router/data-plane.ts).
const ROUTER_CONTRACT = ['src/router/{routing,streaming,switch,guard,https,challenge}.test.ts'];

export default defineConfig({
  test: {
    // Container, network and cgroup tests share host-wide resources (the bridge, cgroup
    // roots); running files one at a time keeps them deterministic on a 2-core box.
    fileParallelism: false,
    // Hang guards, not speed checks: the suite must pass while another process keeps both
    // cores busy (issue 17), where an e2e test that takes 30 s on an idle box takes 90.
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'node', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'haproxy',
          include: ROUTER_CONTRACT,
          env: { PAAS_ROUTER_PLANE: 'haproxy' },
        },
      },
      {
        // The daemon's guarantees that lean on the front door, on the node plane too (the
        // default is haproxy, issue 20): zero-downtime deploys and recovery after kill -9 or
        // SIGTERM.
        extends: true,
        test: {
          name: 'e2e-node',
          include: ['test/e2e/{zero-downtime,recovery}.test.ts'],
          env: { PAAS_E2E_ROUTER: 'node' },
        },
      },
    ],
  },
});

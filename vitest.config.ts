import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Container, network and cgroup tests share host-wide resources (the bridge, cgroup
    // roots); running files one at a time keeps them deterministic on a 2-core box.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});

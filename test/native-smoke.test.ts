// native/test/smoke.sh checks paas-shim against native/SPEC.md directly, below the
// TypeScript runtime: run/start/exec/supervise, the terminal, escapes, bad specs. It prints
// one `ok`/`FAIL` line per check; here each FAIL line fails the test by name.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/host.ts';

describe('native/test/smoke.sh', () => {
  it('passes every check of the shim against SPEC.md', () => {
    const r = spawnSync('bash', [join(REPO, 'native', 'test', 'smoke.sh')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    const failed = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    expect(failed, r.stdout + r.stderr).toEqual([]);
    expect(r.stdout).toMatch(/^passed \d+, failed 0$/m);
    expect(r.status).toBe(0);
  });
});

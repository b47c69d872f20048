import { describe, expect, it } from 'vitest';
import { backoffMs, imageCheck, parseAppJsonChecks } from './index.ts';

describe('health checks', () => {
  it("reads app.json startup checks with Dokku's fields and defaults; skips liveness; refuses garbage", () => {
    const checks = parseAppJsonChecks(
      {
        web: [
          {
            type: 'startup',
            name: 'up',
            path: '/health',
            content: 'ok',
            attempts: 2,
            timeout: 3,
            wait: 1,
            initialDelay: 4,
          },
          { type: 'liveness', path: '/live' },
          { command: 'test -f /tmp/ready' },
        ],
      },
      'web',
    );
    expect(checks).toEqual([
      {
        name: 'up',
        probe: { kind: 'http', path: '/health', content: 'ok', port: undefined },
        attempts: 2,
        timeoutMs: 3000,
        waitMs: 1000,
        initialDelayMs: 4000,
      },
      {
        name: 'web check 3',
        probe: { kind: 'exec', argv: ['/bin/sh', '-c', 'test -f /tmp/ready'] },
        attempts: 5,
        timeoutMs: 5000,
        waitMs: 5000,
        initialDelayMs: 0,
      },
    ]);
    expect(parseAppJsonChecks({ web: [] }, 'worker')).toBeNull();
    expect(parseAppJsonChecks(undefined, 'web')).toBeNull();
    expect(() => parseAppJsonChecks({ web: [{ path: 'health' }] }, 'web')).toThrow(
      /must start with \//,
    );
    expect(() => parseAppJsonChecks({ web: [{ path: '/', attempts: 'x' }] }, 'web')).toThrow(
      /attempts/,
    );
    expect(() => parseAppJsonChecks({ web: [{}] }, 'web')).toThrow(
      /needs one of path, command, uptime or listening/,
    );
  });

  it('turns an image HEALTHCHECK into a startup gate; NONE means none', () => {
    expect(
      imageCheck({
        Test: ['CMD-SHELL', 'wget -q -O- localhost:5000/'],
        Interval: 30e9,
        Timeout: 3e9,
        Retries: 2,
        StartPeriod: 5e9,
      }),
    ).toEqual({
      name: 'image HEALTHCHECK',
      probe: { kind: 'exec', argv: ['/bin/sh', '-c', 'wget -q -O- localhost:5000/'] },
      waitMs: 1000,
      initialDelayMs: 0,
      timeoutMs: 3000,
      attempts: 7,
    });
    expect(imageCheck({ Test: ['CMD', '/bin/check', '--fast'] })?.probe).toEqual({
      kind: 'exec',
      argv: ['/bin/check', '--fast'],
    });
    expect(imageCheck({ Test: ['NONE'] })).toBeNull();
    expect(imageCheck(undefined)).toBeNull();
  });
});

describe('restart backoff', () => {
  it('restarts at once, then doubles from the base up to the cap', () => {
    const p = { baseMs: 1000, capMs: 8000, crashLoop: 3, stableMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 9].map((n) => backoffMs(n, p))).toEqual([
      0, 1000, 2000, 4000, 8000, 8000, 8000,
    ]);
  });
});

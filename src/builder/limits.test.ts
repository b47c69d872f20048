// The --build-* flags' one validator: sizes, counts and durations parsed once, each error
// naming its flag; the defaults when a flag is absent.
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { defaultBuildLimits, parseBuildLimits, parseDuration } from './index.ts';

describe('build limits', () => {
  it('defaults: 2 GiB, 4096 pids, every core, 30 minutes, 10 GiB of disk', () => {
    expect(parseBuildLimits({})).toEqual(defaultBuildLimits());
    expect(defaultBuildLimits()).toEqual({
      memoryBytes: 2 * 1024 ** 3,
      pids: 4096,
      cpus: availableParallelism(),
      timeoutMs: 30 * 60_000,
      diskBytes: 10 * 1024 ** 3,
    });
  });

  it('parses each flag', () => {
    expect(
      parseBuildLimits({ memory: '512m', pids: '128', cpus: '0.5', timeout: '90s', disk: '2g' }),
    ).toEqual({
      memoryBytes: 512 * 1024 ** 2,
      pids: 128,
      cpus: 0.5,
      timeoutMs: 90_000,
      diskBytes: 2 * 1024 ** 3,
    });
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('45')).toBe(45_000);
  });

  it('refuses bad values, naming the flag', () => {
    expect(() => parseBuildLimits({ memory: '12q' })).toThrow(/^--build-memory: "12q"/);
    expect(() => parseBuildLimits({ pids: '0' })).toThrow(/^--build-pids: /);
    expect(() => parseBuildLimits({ cpus: 'all' })).toThrow(/^--build-cpus: /);
    expect(() => parseBuildLimits({ timeout: '5x' })).toThrow(/^--build-timeout: "5x"/);
    expect(() => parseBuildLimits({ timeout: '0s' })).toThrow(/between 1s and 24h/);
    expect(() => parseBuildLimits({ disk: '1k' })).toThrow(/^--build-disk: .*minimum/);
  });
});

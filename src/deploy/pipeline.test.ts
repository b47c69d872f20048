import { describe, expect, it } from 'vitest';
import { parseAppName, type Release } from '../apps/index.ts';
import { planPush } from '../git/index.ts';
import { processEnv } from './index.ts';

const Z = '0'.repeat(40);
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

describe('push plan', () => {
  it('deploys main or master, stores other branches, refuses deleting main', () => {
    expect(planPush([{ oldSha: Z, newSha: A, ref: 'refs/heads/main' }]).kind).toBe('deploy');
    expect(planPush([{ oldSha: A, newSha: B, ref: 'refs/heads/master' }]).kind).toBe('deploy');
    expect(
      planPush([
        { oldSha: Z, newSha: A, ref: 'refs/heads/feature' },
        { oldSha: Z, newSha: A, ref: 'refs/tags/v1' },
      ]).kind,
    ).toBe('store');
    expect(planPush([{ oldSha: A, newSha: Z, ref: 'refs/heads/main' }])).toEqual({
      kind: 'refuse',
      reason: expect.stringMatching(/deleting main is not allowed/),
    });
    expect(planPush([{ oldSha: A, newSha: Z, ref: 'refs/heads/feature' }]).kind).toBe('store');
    expect(
      planPush([
        { oldSha: Z, newSha: A, ref: 'refs/heads/main' },
        { oldSha: Z, newSha: B, ref: 'refs/heads/master' },
      ]).kind,
    ).toBe('refuse');
  });
});

describe('process environment', () => {
  it('layers image ENV, the release config and PORT for web', () => {
    const release = {
      app: parseAppName('shop'),
      version: 3,
      config: { GREETING: 'hi', PATH: '/custom' },
    } as unknown as Release;
    expect(processEnv(['PATH=/bin', 'LANG=C.UTF-8'], release, 'web')).toEqual({
      PATH: '/custom',
      LANG: 'C.UTF-8',
      GREETING: 'hi',
      PORT: '5000',
      PAAS_APP: 'shop',
      PAAS_RELEASE: 'v3',
    });
    expect(processEnv([], release, 'worker')).not.toHaveProperty('PORT');
  });
});

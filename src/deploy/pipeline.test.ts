import { describe, expect, it } from 'vitest';
import { parseAppName, type Release } from '../apps/index.ts';
import { planPush } from '../git/index.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAppJson } from './app-json.ts';
import { exposedTcpPorts, processEnv, webPort } from './index.ts';

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

describe("web port (issue 16: Dokku's rule, PORT stays the contract)", () => {
  const rel = (config: Record<string, string> = {}) =>
    ({ app: parseAppName('shop'), version: 1, config }) as unknown as Release;
  const expose = (...ports: string[]) => ({
    ExposedPorts: Object.fromEntries(ports.map((p) => [p, {}])),
  });

  it('an image that EXPOSEs exactly one TCP port gets that one', () => {
    expect(webPort(rel(), expose('8080/tcp'))).toEqual({
      port: 8080,
      why: 'the image EXPOSEs 8080/tcp only',
    });
    // UDP does not count: the router speaks TCP.
    expect(webPort(rel(), expose('8080/tcp', '53/udp')).port).toBe(8080);
  });

  it('the PORT config (ports:set) wins; several or no EXPOSEd ports mean 5000', () => {
    expect(webPort(rel({ PORT: '9000' }), expose('8080/tcp'))).toEqual({
      port: 9000,
      why: 'the PORT config (ports:set)',
    });
    expect(webPort(rel(), expose('80/tcp', '443/tcp')).port).toBe(5000);
    expect(webPort(rel(), {}).port).toBe(5000);
    expect(() => webPort(rel({ PORT: 'http' }), {})).toThrow(/PORT config var of shop/);
  });

  it('PORT is set to the chosen port', () => {
    expect(processEnv([], rel(), 'web', 8080).PORT).toBe('8080');
    expect(exposedTcpPorts(expose('9000', '8080/tcp', '8080/TCP', '1-2/tcp'))).toEqual([
      8080, 9000,
    ]);
  });
});

describe('app.json', () => {
  const read = (json: unknown) => {
    const dir = mkdtempSync('/tmp/paas-appjson-');
    try {
      writeFileSync(join(dir, 'app.json'), JSON.stringify(json));
      return readAppJson(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('reads the scripts and the formation the platform acts on', () => {
    expect(
      read({
        name: 'x',
        scripts: {
          dokku: { predeploy: 'touch /app/x', postdeploy: 'echo done' },
          postdeploy: 'echo once',
        },
        formation: { web: { quantity: 2 }, worker: { quantity: 0, size: 'basic' } },
      }),
    ).toEqual({
      predeploy: 'touch /app/x',
      postdeploy: 'echo done',
      firstPostdeploy: 'echo once',
      formation: { web: 2, worker: 0 },
    });
  });

  it('holds formation to the ps:scale rule', () => {
    expect(() => read({ formation: { web: { quantity: 101 } } })).toThrow(
      /app\.json formation: web=101/,
    );
    expect(() => read({ formation: { Web_1: { quantity: 1 } } })).toThrow(/process type/);
    expect(() => read({ formation: { release: { quantity: 1 } } })).toThrow(/cannot be scaled/);
    expect(() => read({ scripts: { dokku: { postdeploy: 3 } } })).toThrow(/must be a command/);
  });
});

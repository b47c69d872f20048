import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PaasError } from '../errors/index.ts';
import { parseContainerPath, parseMount, parseUnmount, parseVolumeName } from './index.ts';

const base = mkdtempSync(join(tmpdir(), 'paas-storage-'));
const dataDir = join(base, 'data');
const hostDir = join(base, 'srv');
mkdirSync(join(dataDir, 'volumes', 'other', 'data'), { recursive: true });
mkdirSync(hostDir);
afterAll(() => rmSync(base, { recursive: true, force: true }));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof PaasError ? `${e.code}/${e.status}` : String(e);
  }
  return 'accepted';
}

describe('storage:mount validation', () => {
  it('takes a named volume or an operator host directory', () => {
    expect(parseMount('data:/app/data', dataDir)).toEqual({
      source: { kind: 'volume', name: 'data' },
      target: '/app/data',
    });
    expect(parseMount(`${hostDir}:/srv`, dataDir)).toEqual({
      source: { kind: 'host', path: hostDir },
      target: '/srv',
    });
  });

  it.each([
    ['/', 'the host root'],
    ['/etc', 'a system directory'],
    ['/etc/ssl', 'inside a system directory'],
    ['/proc', 'kernel interface'],
    ['/usr/lib', 'inside /usr'],
    ['/var', 'above /var/lib/paas'],
    ['/var/lib/paas-net', "paas's network leases"],
    [dataDir, 'the data dir'],
    [join(dataDir, 'volumes', 'other', 'data'), "another app's volume, inside the data dir"],
    [base, 'above the data dir'],
    [join(base, 'missing'), 'a missing directory'],
  ])('refuses the host path %s (%s) with InvalidMount', (path) => {
    expect(code(() => parseMount(`${path}:/mnt`, dataDir))).toBe('InvalidMount/400');
  });

  it('judges a symlinked host path by where it leads', () => {
    const link = join(base, 'to-etc');
    symlinkSync('/etc', link);
    expect(code(() => parseMount(`${link}:/mnt`, dataDir))).toBe('InvalidMount/400');
    const ok = join(base, 'to-srv');
    symlinkSync(hostDir, ok);
    expect(parseMount(`${ok}:/mnt`, dataDir).source).toEqual({ kind: 'host', path: hostDir });
  });

  it.each([
    '/',
    'relative',
    '/proc/self',
    '/dev/shm',
    '/sys',
    '/a/../etc',
    '/a//b',
    '/a/',
    '/a\tb',
    '/a\nb',
    '',
  ])('refuses the container path %j', (p) => {
    expect(code(() => parseContainerPath(p))).toBe('InvalidMount/400');
  });

  it.each(['Data', '-x', '.hidden', 'a/b', '..', 'x'.repeat(64), ''])(
    'refuses the volume name %j',
    (v) => {
      expect(code(() => parseVolumeName(v))).toBe('InvalidMount/400');
    },
  );

  it('refuses a mount without a source or a path', () => {
    for (const m of ['data', ':/x', 'data:', 'data:x', 42, null])
      expect(code(() => parseMount(m, dataDir))).toBe('InvalidMount/400');
  });

  it('unmounts by path or by the SOURCE:/path mounted', () => {
    expect(parseUnmount('/data')).toEqual({ source: null, target: '/data' });
    expect(parseUnmount('vol:/data')).toEqual({ source: 'vol', target: '/data' });
    expect(code(() => parseUnmount('vol:/'))).toBe('InvalidMount/400');
  });
});

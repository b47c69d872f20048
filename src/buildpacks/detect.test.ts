// Detection order and failures across buildpacks: the Dockerfile wins, then node, static,
// procfile; BUILDPACK forces one; a repository matching nothing says what was looked for.
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BuildFailed, InvalidArgument } from '../errors/index.ts';
import { FIXTURES } from './contract.case.ts';
import { describeChoice, detect, listBuildpacks, writeBuildpackFiles } from './index.ts';

const dirs: string[] = [];
function scratch(files: Record<string, string> = {}, from?: string): string {
  const dir = mkdtempSync('/tmp/paas-bp-detect-');
  dirs.push(dir);
  if (from !== undefined) cpSync(path.join(FIXTURES, from), dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(dir, rel), text);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('detect', () => {
  it.each([
    ['express', 'node', /package\.json/],
    ['typescript', 'node', /package\.json/],
    ['static', 'static', /static\.json/],
    ['procfile', 'procfile', /Procfile/],
  ])('%s → %s', (fixture, buildpack, reason) => {
    const c = detect(path.join(FIXTURES, fixture));
    expect(c.kind).toBe('buildpack');
    expect(c.buildpack).toBe(buildpack);
    expect(c.reason).toMatch(reason);
    expect(c.dockerfile).toMatch(/^FROM /m);
    expect(describeChoice(c)).toBe(`Building with the ${buildpack} buildpack (${c.reason})`);
  });

  it("the app's own Dockerfile wins over package.json", () => {
    const c = detect(path.join(FIXTURES, 'dockerfile'));
    expect(c).toMatchObject({ kind: 'dockerfile', buildpack: null, dockerfile: null });
    expect(describeChoice(c)).toMatch(/app's Dockerfile \(Dockerfile found/);
  });

  it('node comes before static and procfile; index.html with a package.json is a node app', () => {
    expect(detect(scratch({ 'index.html': '<p>hi</p>' }, 'express')).buildpack).toBe('node');
    expect(detect(scratch({ 'index.html': '<p>hi</p>', Procfile: 'web: x' })).buildpack).toBe(
      'static',
    );
    expect(detect(scratch({ 'index.html': '<p>hi</p>', Procfile: 'web: x' })).reason).toBe(
      'index.html found and no package.json',
    );
  });

  it('a repository matching nothing fails saying what was looked for', () => {
    const e = (() => {
      try {
        detect(path.join(FIXTURES, 'nothing'));
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(BuildFailed);
    expect((e as Error).message).toBe(
      'no buildpack matched: looked for a Dockerfile, package.json (node), static.json or index.html (static), Procfile (procfile) at the repository root; add one, or set BUILDPACK to one of node, static, procfile',
    );
  });

  it('BUILDPACK forces a buildpack, over a Dockerfile too', () => {
    const c = detect(scratch({ Dockerfile: 'FROM busybox\n' }, 'procfile'), { forced: 'procfile' });
    expect(c).toMatchObject({
      kind: 'buildpack',
      buildpack: 'procfile',
      reason: 'BUILDPACK=procfile (Procfile found)',
    });
    expect(detect(path.join(FIXTURES, 'express'), { forced: ' Procfile ' }).buildpack).toBe(
      'procfile',
    );
    expect(detect(path.join(FIXTURES, 'express'), { forced: '' }).buildpack).toBe('node');
  });

  it('an unknown BUILDPACK is an error naming the known ones', () => {
    expect(() => detect(path.join(FIXTURES, 'express'), { forced: 'python' })).toThrow(
      InvalidArgument,
    );
    expect(() => detect(path.join(FIXTURES, 'express'), { forced: 'python' })).toThrow(
      'unknown buildpack "python" (BUILDPACK): use one of node, static, procfile',
    );
  });

  it('a forced buildpack that finds none of its files says so', () => {
    expect(() => detect(path.join(FIXTURES, 'static'), { forced: 'node' })).toThrow(
      /BUILDPACK=node, but the node buildpack does not apply/,
    );
  });

  it('reads nothing outside the app: a symlinked package.json to a host file is absent', () => {
    const dir = scratch({ Procfile: 'web: true' });
    symlinkSync('/etc/hostname', path.join(dir, 'package.json'));
    expect(detect(dir).buildpack).toBe('procfile');
  });

  it('malformed package.json fails the detection naming the file', () => {
    expect(() => detect(scratch({ 'package.json': '{ "name": ' }))).toThrow(
      /^package\.json is not valid JSON/,
    );
  });

  it('lists the buildpacks in detection order', () => {
    expect(listBuildpacks().map((b) => b.name)).toEqual(['node', 'static', 'procfile']);
    for (const b of listBuildpacks()) expect(b.summary.length).toBeGreaterThan(10);
  });

  it('writes the buildpack files into the build context', () => {
    const dir = scratch({}, 'static');
    const c = detect(dir);
    writeBuildpackFiles(dir, c);
    expect(Object.keys(c.files)).toEqual(['.paas-buildpack/static-server.mjs']);
    expect(detect(dir).files['.paas-buildpack/static-server.mjs']).toContain('http.createServer');
  });
});

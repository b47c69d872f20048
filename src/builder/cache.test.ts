// The layer cache keys on content, not mtimes: a code-only change reuses the dependency
// install, a package.json change reruns it, an untouched rebuild reuses every layer.
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildResult } from './index.ts';
import { fixtureCopy, openHarness, runImage, type Harness } from './harness.ts';

let h: Harness;
let dir: string;

beforeAll(async () => {
  h = await openHarness();
  dir = fixtureCopy('cache');
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await h?.cleanup();
});

const INSTALL =
  'RUN mkdir -p /deps && cp package.json /deps/installed.json && cat /proc/sys/kernel/random/uuid > /deps/stamp';
const LAYER_STEPS = [
  'WORKDIR /app',
  'COPY package*.json ./',
  INSTALL,
  'COPY . .',
  'RUN cp server.js /app/built.js',
];

async function again(
  opts: { noCache?: boolean } = {},
): Promise<{ r: BuildResult; cached: Record<string, boolean>; lines: string[] }> {
  const lines: string[] = [];
  const r = await build({
    contextDir: dir,
    tag: { repo: 'test/cache', tag: 'latest' },
    runtime: h.runtime,
    store: h.store,
    dataDir: h.dataDir,
    onLine: (l) => lines.push(l),
    ...opts,
  });
  const cached = Object.fromEntries(
    r.steps
      .filter((s) => LAYER_STEPS.includes(s.instruction))
      .map((s) => [s.instruction, s.cached]),
  );
  expect(Object.keys(cached)).toEqual(LAYER_STEPS);
  return { r, cached, lines };
}

async function out(image: BuildResult['image'], script: string): Promise<string> {
  const res = await runImage(h, image, ['/bin/sh', '-c', script]);
  expect(res.exitCode).toBe(0);
  return res.stdout;
}

describe('build cache', () => {
  let first: BuildResult;
  let stamp: string;

  it('builds every layer the first time', async () => {
    const { r, cached } = await again();
    first = r;
    expect(Object.values(cached).every((c) => c === false)).toBe(true);
    stamp = await out(r.image, 'cat /deps/stamp');
    expect(await out(r.image, 'cat /app/built.js')).toBe('console.log("v1")\n');
  });

  it('reuses every layer when nothing changed, and gives the same image', async () => {
    const { r, cached, lines } = await again();
    expect(Object.values(cached).every((c) => c === true)).toBe(true);
    expect(lines.filter((l) => l === ' ---> Using cache').length).toBe(LAYER_STEPS.length);
    expect(r.image.digest).toBe(first.image.digest);
  });

  it('stays cached when only mtimes change', async () => {
    const future = new Date(Date.now() + 3600_000);
    for (const f of ['server.js', 'package.json', 'package-lock.json'])
      utimesSync(path.join(dir, f), future, future);
    const { cached } = await again();
    expect(Object.values(cached).every((c) => c === true)).toBe(true);
  });

  it('a code-only change reuses the dependency install and rebuilds only what follows the code COPY', async () => {
    writeFileSync(path.join(dir, 'server.js'), 'console.log("v2")\n');
    const { r, cached } = await again();
    expect(cached).toEqual({
      'WORKDIR /app': true,
      'COPY package*.json ./': true,
      [INSTALL]: true,
      'COPY . .': false,
      'RUN cp server.js /app/built.js': false,
    });
    expect(await out(r.image, 'cat /deps/stamp')).toBe(stamp);
    expect(await out(r.image, 'cat /app/built.js')).toBe('console.log("v2")\n');
  });

  it('a package.json change reruns the install', async () => {
    writeFileSync(
      path.join(dir, 'package.json'),
      '{"name":"app","version":"1.0.1","dependencies":{"left-pad":"1.3.0"}}\n',
    );
    const { r, cached } = await again();
    expect(cached).toEqual({
      'WORKDIR /app': true,
      'COPY package*.json ./': false,
      [INSTALL]: false,
      'COPY . .': false,
      'RUN cp server.js /app/built.js': false,
    });
    expect(await out(r.image, 'cat /deps/installed.json')).toContain('"version":"1.0.1"');
    expect(await out(r.image, 'cat /deps/stamp')).not.toBe(stamp);
  });

  it('noCache rebuilds every layer', async () => {
    const { cached } = await again({ noCache: true });
    expect(Object.values(cached).every((c) => c === false)).toBe(true);
  });

  it('a different build arg in scope misses the cache', async () => {
    const dockerfile =
      'FROM library/busybox:latest\nARG FLAVOUR=plain\nRUN echo $FLAVOUR > /flavour\n';
    const run = async (flavour: string) =>
      build({
        contextDir: dir,
        dockerfile,
        buildArgs: { FLAVOUR: flavour },
        tag: { repo: 'test/args', tag: 'latest' },
        runtime: h.runtime,
        store: h.store,
        dataDir: h.dataDir,
      });
    expect((await run('a')).steps.at(-1)?.cached).toBe(false);
    expect((await run('a')).steps.at(-1)?.cached).toBe(true);
    const b = await run('b');
    expect(b.steps.at(-1)?.cached).toBe(false);
    expect(await out(b.image, 'cat /flavour')).toBe('b\n');
  });
});

// What a build refuses, and how it says so: unsupported instructions by line, sources
// outside the context, symlinks leading out of it, oversized contexts, failing RUNs.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as tar from 'tar';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BuildFailed,
  BuildLimitExceeded,
  InvalidDockerfile,
  PayloadTooLarge,
  type PaasError,
} from '../errors/index.ts';
import { build, type BuildOptions } from './index.ts';
import { openHarness, runImage, type Harness } from './harness.ts';

let h: Harness;
let root: string;
let n = 0;

beforeAll(async () => {
  h = await openHarness();
  root = mkdtempSync('/var/tmp/paas-build-err-');
  writeFileSync(path.join(root, 'outside.txt'), 'host secret\n');
});
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await h?.cleanup();
});

/** A context at <root>/ctxN with `files`, built with `dockerfile`. */
function context(files: Record<string, string>): string {
  const dir = path.join(root, `ctx${++n}`);
  mkdirSync(dir);
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), body);
  }
  return dir;
}

function opts(
  contextDir: string,
  dockerfile: string,
  extra: Partial<BuildOptions> = {},
): BuildOptions {
  return {
    contextDir,
    dockerfile,
    tag: { repo: 'test/errors', tag: 'latest' },
    runtime: h.runtime,
    store: h.store,
    dataDir: h.dataDir,
    ...extra,
  };
}

async function failure(p: Promise<unknown>): Promise<PaasError> {
  try {
    await p;
  } catch (err) {
    return err as PaasError;
  }
  throw new Error('expected the build to fail');
}

describe('build errors', () => {
  it('an unsupported instruction names its line', async () => {
    const err = await failure(
      build(opts(context({}), 'FROM library/busybox:latest\n\nONBUILD RUN echo hi\n')),
    );
    expect(err).toBeInstanceOf(InvalidDockerfile);
    expect(err.message).toMatch(/line 3: ONBUILD is not supported/);
    const unknown = await failure(
      build(opts(context({}), 'FROM library/busybox:latest\nRUN true\nFROBNICATE x\n')),
    );
    expect(unknown.message).toMatch(/line 3: unknown or unsupported instruction "FROBNICATE"/);
    expect(unknown.details).toMatchObject({ line: 3 });
  });

  it('a failing RUN reports its step, instruction and exit code', async () => {
    const err = await failure(
      build(
        opts(
          context({}),
          'FROM library/busybox:latest\nENV A=1\nRUN echo about to fail && exit 3\nRUN echo never\n',
        ),
      ),
    );
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.details).toMatchObject({
      step: 3,
      exitCode: 3,
      instruction: 'RUN echo about to fail && exit 3',
    });
    expect(err.message).toContain('step 3/4');
    expect(err.message).toContain('RUN echo about to fail && exit 3');
    expect(err.message).toContain('non-zero code: 3');
  });

  it('a COPY source outside the context fails clearly', async () => {
    for (const src of ['../outside.txt', '/../outside.txt', 'sub/../../outside.txt']) {
      const err = await failure(
        build(opts(context({ 'sub/a': 'a' }), `FROM library/busybox:latest\nCOPY ${src} /x\n`)),
      );
      expect(err, src).toBeInstanceOf(InvalidDockerfile);
      expect(err.message).toMatch(/line 2: COPY source ".*" is outside the build context/);
    }
  });

  it('a missing or ignored source fails naming it', async () => {
    const dir = context({ '.dockerignore': 'secret.txt\n', 'secret.txt': 's' });
    const err = await failure(
      build(opts(dir, 'FROM library/busybox:latest\nCOPY secret.txt /x\n')),
    );
    expect(err.message).toMatch(
      /"secret.txt" not found in the build context \(or excluded by \.dockerignore\)/,
    );
  });

  it('a symlink leading out of the context is refused, not followed', async () => {
    const dir = context({ 'ok.txt': 'ok' });
    symlinkSync(path.join(root, 'outside.txt'), path.join(dir, 'abs-link'));
    symlinkSync('../outside.txt', path.join(dir, 'rel-link'));
    symlinkSync('..', path.join(dir, 'up'));
    for (const src of ['abs-link', 'rel-link', 'up/outside.txt']) {
      const err = await failure(build(opts(dir, `FROM library/busybox:latest\nCOPY ${src} /x\n`)));
      expect(err, src).toBeInstanceOf(InvalidDockerfile);
      expect(err.message, src).toMatch(/symlink .* leads outside the build context/);
    }
  });

  it('a symlink inside a copied directory is copied as a link, never followed', async () => {
    const dir = context({ 'app/ok.txt': 'ok' });
    symlinkSync(path.join(root, 'outside.txt'), path.join(dir, 'app/escape'));
    const r = await build(opts(dir, 'FROM library/busybox:latest\nCOPY app/ /app/\n'));
    const res = await runImage(h, r.image, [
      '/bin/sh',
      '-c',
      'readlink /app/escape; cat /app/escape 2>/dev/null || echo unreadable',
    ]);
    expect(res.stdout).toBe(`${path.join(root, 'outside.txt')}\nunreadable\n`);
  });

  it('an oversized context is refused before anything runs', async () => {
    const dir = context({ 'big.bin': 'x'.repeat(4096) });
    const err = await failure(
      build(opts(dir, 'FROM library/busybox:latest\nRUN touch /ran\n', { maxContextBytes: 1024 })),
    );
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect(err.message).toContain('1024 bytes limit');
  });

  it('more than one source needs a directory destination', async () => {
    const err = await failure(
      build(opts(context({ a: 'a', b: 'b' }), 'FROM library/busybox:latest\nCOPY a b /dest\n')),
    );
    expect(err.message).toMatch(
      /line 2: with more than one source file the destination must be a directory/,
    );
  });

  it('ADD of a URL says it is not supported', async () => {
    const err = await failure(
      build(opts(context({}), 'FROM library/busybox:latest\nADD https://example.com/x.tgz /x\n')),
    );
    expect(err.message).toMatch(/line 2: remote sources .* are not supported/);
  });

  it('an unknown base image names the images we have', async () => {
    const err = await failure(build(opts(context({}), 'FROM library/nonexistent:1\n')));
    expect(err.code).toBe('ImageNotFound');
    expect(err.message).toContain('library/busybox:latest');
  });

  it('ADD of an archive with entries climbing out of the destination is refused', async () => {
    const dir = context({ 'payload/evil.txt': 'evil' });
    await tar.c(
      {
        file: path.join(dir, 'evil.tar'),
        cwd: path.join(dir, 'payload'),
        preservePaths: true,
        portable: true,
        onWriteEntry: (e) => {
          e.path = '../../../../escaped.txt';
        },
      } as tar.TarOptionsWithAliasesFile,
      ['evil.txt'],
    );
    const err = await failure(
      build(opts(dir, 'FROM library/busybox:latest\nADD evil.tar /opt/x/\n')),
    );
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.message).toMatch(/line 2: ADD evil.tar: archive refused: .*'\.\.'/);
  });

  it('a RUN past the memory limit fails instead of taking the box down', async () => {
    const err = await failure(
      build(
        opts(
          context({}),
          'FROM library/busybox:latest\nRUN dd if=/dev/zero of=/dev/null bs=256M count=1\n',
          { limits: { memoryBytes: 32 * 1024 * 1024 } },
        ),
      ),
    );
    expect(err).toBeInstanceOf(BuildLimitExceeded);
    expect(err.details).toMatchObject({ step: 2, limit: 'memory' });
    expect(err.message).toMatch(
      /step 2 ran out of memory: .* 32 MiB \(daemon flag --build-memory\)/,
    );
  });
});

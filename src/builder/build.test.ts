// The builder's story on busybox: every supported instruction builds, and the image runs in
// our runtime with the files, env, user, workdir, entrypoint/cmd and ports it declared.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from './index.ts';
import { fixtureCopy, openHarness, runImage, type Harness } from './harness.ts';
import type { BuildResult } from './index.ts';

let h: Harness;
const dirs: string[] = [];

beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await h?.cleanup();
});

function ctx(name: string): string {
  const d = fixtureCopy(name);
  dirs.push(d);
  return d;
}

async function sh(image: BuildResult['image'], script: string): Promise<string> {
  const r = await runImage(h, image, ['/bin/sh', '-c', script]);
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return r.stdout;
}

describe('Dockerfile with every instruction', () => {
  let result: BuildResult;
  let dir: string;
  const lines: string[] = [];

  beforeAll(async () => {
    dir = ctx('all');
    await tar.c(
      { gzip: true, file: path.join(dir, 'files.tar.gz'), cwd: path.join(dir, 'tarsrc') },
      ['inner.txt', 'sub'],
    );
    rmSync(path.join(dir, 'tarsrc'), { recursive: true });
    result = await build({
      contextDir: dir,
      tag: { repo: 'test/all', tag: 'v1' },
      buildArgs: { VERSION: '2.5' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
      onLine: (l) => lines.push(l),
    });
  });

  it('streams Docker-style step lines', () => {
    expect(lines).toContain('Step 1/28 : FROM ${BASE}:latest AS builder');
    expect(lines).toContain(
      'Step 28/28 : CMD ["echo \\"user=$(id -u) cwd=$(pwd) version=$APP_VERSION\\""]',
    );
    expect(lines.some((l) => /^Step \d+\/28 : RUN id -u > \/home\/app\/uid.txt/.test(l))).toBe(
      true,
    );
    expect(lines.filter((l) => /^ ---> \d+\.\d\ds$/.test(l)).length).toBe(26);
    expect(lines.at(-1)).toBe('Successfully tagged test/all:v1');
  });

  it('keeps the config: env, workdir, user, ports, volumes, labels, stop signal, healthcheck, entrypoint/cmd', () => {
    const c = result.image.config;
    expect(c.Env).toEqual(
      expect.arrayContaining([
        'APP_HOME=/srv/app',
        'APP_VERSION=2.5',
        'FALLBACK=fallback',
        'ALT=has-version',
        'QUOTED=$NOT_EXPANDED',
      ]),
    );
    expect(c.Env?.some((e) => e.startsWith('SSL_CERT_FILE') || e.startsWith('VERSION='))).toBe(
      false,
    );
    expect(c.WorkingDir).toBe('/srv/app');
    expect(c.User).toBe('app');
    expect(c.ExposedPorts).toEqual({ '8080/tcp': {}, '9000/udp': {} });
    expect(c.Volumes).toEqual({ '/data': {} });
    expect(c.Labels).toEqual({
      'org.example.name': 'all instructions',
      tier: 'test',
      maintainer: 'Dev <dev@example.com>',
    });
    expect(c.StopSignal).toBe('SIGINT');
    expect(c.Healthcheck).toEqual({
      Test: ['CMD-SHELL', 'wget -q -O- http://localhost:8080/ || exit 1'],
      Interval: 5e9,
      Timeout: 2e9,
      Retries: 3,
    });
    expect(c.Shell).toEqual(['/bin/sh', '-ec']);
    expect(c.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(c.Cmd).toEqual(['echo "user=$(id -u) cwd=$(pwd) version=$APP_VERSION"']);
    const history = result.image.configFile.history ?? [];
    expect(history.at(-1)?.created_by).toContain('CMD');
    expect(history.filter((e) => !e.empty_layer).length).toBe(result.image.layers.length);
  });

  it('runs with its entrypoint and cmd as the image user in its workdir', async () => {
    const r = await runImage(h, result.image);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('user=1000 cwd=/srv/app version=2.5');
  });

  it('has the copied, added and built files with their owners and modes', async () => {
    const out = await sh(
      result.image,
      [
        'cat /srv/app/server.js /srv/app/lib/util.js /srv/app/greeting.txt /srv/app/exec.txt /srv/app/shell.txt',
        'stat -c "%n %U:%G %a" /srv/app /srv/app/server.js /srv/app/lib /usr/local/bin/tool.sh',
        'test ! -e /usr/local/bin/readme.txt && echo glob-only-sh',
        'cat /opt/unpacked/inner.txt /opt/unpacked/sub/deep.txt /opt/notes.txt',
        'cat /home/app/uid.txt /home/app/pwd.txt',
        'test ! -e /srv/app/doomed.txt && echo whiteout-ok',
      ].join('; '),
    );
    expect(out.split('\n')).toEqual([
      'console.log("hi")',
      'module.exports = 1',
      'hello from builder',
      'exec-form',
      'shell ok',
      '/srv/app root:root 755',
      '/srv/app/server.js app:app 644',
      '/srv/app/lib app:app 755',
      '/usr/local/bin/tool.sh root:root 700',
      'glob-only-sh',
      'from the tarball',
      'nested',
      'plain file, not an archive',
      '1000',
      '/srv/app',
      'whiteout-ok',
      '',
    ]);
  });

  it('deletes in a later layer with a whiteout: the file is in one layer and hidden by the next', async () => {
    const dirsTopFirst = await h.store.layerDirs(result.image);
    const { lstatSync } = await import('node:fs');
    const has = dirsTopFirst.map((d) => {
      const st = (() => {
        try {
          return lstatSync(path.join(d, 'srv/app/doomed.txt'));
        } catch {
          return null;
        }
      })();
      return st === null ? '-' : st.isCharacterDevice() ? 'whiteout' : 'file';
    });
    expect(has.indexOf('whiteout')).toBeGreaterThanOrEqual(0);
    expect(has.indexOf('file')).toBeGreaterThan(has.indexOf('whiteout'));
  });

  it('rebuilds from cache entirely, COPY --from included, to the same image', async () => {
    const again = await build({
      contextDir: dir,
      tag: { repo: 'test/all', tag: 'v1' },
      buildArgs: { VERSION: '2.5' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    });
    const layerSteps = again.steps.filter((s) => /^(RUN|COPY|ADD|WORKDIR)/.test(s.instruction));
    expect(layerSteps.length).toBe(13);
    expect(layerSteps.filter((s) => !s.cached)).toEqual([]);
    expect(again.image.digest).toBe(result.image.digest);
  });

  it('leaves no mount points of the build container (CA bundle, hosts, resolv.conf) in the layers', async () => {
    const { existsSync } = await import('node:fs');
    // Only this build's layers: the shared test rootfs may carry such files from other tests.
    const built = (await h.store.layerDirs(result.image)).slice(0, -h.busybox.layers.length);
    expect(built.length).toBeGreaterThan(5);
    for (const d of built) {
      for (const p of ['etc/ssl', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname'])
        expect(existsSync(path.join(d, p)), `${d}/${p}`).toBe(false);
    }
  });
});

describe('escape directive', () => {
  it('uses ` for line continuations and keeps backslashes literal', async () => {
    const r = await build({
      contextDir: ctx('escape'),
      tag: { repo: 'test/escape', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    });
    expect(r.image.config.Env).toContain('WIN_PATH=C:\\app\\bin');
    expect(await sh(r.image, 'cat /first.txt /second.txt')).toBe('one\ntwo\n');
  });
});

describe('.dockerignore', () => {
  it('keeps ignored files out of the image, exceptions in', async () => {
    const r = await build({
      contextDir: ctx('ignore'),
      tag: { repo: 'test/ignore', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    });
    const out = await runImage(h, r.image);
    const names = out.stdout.split('\n').filter(Boolean).sort();
    expect(names).toEqual(['.', '..', '.dockerignore', 'Dockerfile', 'keep.bak', 'visible.txt']);
  });
});

describe('FROM scratch', () => {
  it('builds an image from nothing with COPY --from an image', async () => {
    const dockerfile =
      'FROM scratch\nCOPY --from=library/busybox:latest /bin/busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\nCMD ["echo", "from scratch"]\n';
    const r = await build({
      contextDir: ctx('escape'),
      dockerfile,
      tag: { repo: 'test/scratch', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    });
    expect(r.image.layers.length).toBe(1);
    const out = await runImage(h, r.image);
    expect(out.stdout).toBe('from scratch\n');
  });
});

describe('RUN layers', () => {
  it('keep symlinks that dangle within the layer (they point into lower layers or nowhere)', async () => {
    const dockerfile =
      'FROM library/busybox:latest\nRUN ln -s ../../etc/passwd /usr/bin/passwd-link && ln -s /nonexistent /dangling\n';
    const r = await build({
      contextDir: ctx('escape'),
      dockerfile,
      tag: { repo: 'test/links', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    });
    expect(await sh(r.image, 'readlink /dangling; head -1 /usr/bin/passwd-link')).toBe(
      '/nonexistent\nroot:x:0:0:root:/root:/bin/sh\n',
    );
  });
});

describe('targets and concurrency', () => {
  it('--target builds only up to the named stage', async () => {
    const dir = ctx('all');
    const lines: string[] = [];
    const r = await build({
      contextDir: dir,
      target: 'builder',
      tag: { repo: 'test/target', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
      onLine: (l) => lines.push(l),
    });
    expect(lines.filter((l) => l.startsWith('Step '))).toHaveLength(4);
    expect(
      await sh(r.image, 'cat /out/greeting.txt; test -e /srv/app/server.js || echo no-app'),
    ).toBe('hello from builder\nno-app\n');
  });

  it('two apps build at the same time, sharing identical layers safely and leaving no scratch dirs', async () => {
    const a = ctx('cache');
    const b = ctx('cache');
    writeFileSync(path.join(b, 'server.js'), 'console.log("b")\n');
    const opts = { runtime: h.runtime, store: h.store, dataDir: h.dataDir };
    const [ra, rb] = await Promise.all([
      build({ ...opts, contextDir: a, tag: { repo: 'test/conc-a', tag: 'v1' } }),
      build({ ...opts, contextDir: b, tag: { repo: 'test/conc-b', tag: 'v1' } }),
    ]);
    expect(await sh(ra.image, 'cat /app/built.js')).toBe('console.log("v1")\n');
    expect(await sh(rb.image, 'cat /app/built.js')).toBe('console.log("b")\n');
    expect(readdirSync(path.join(h.dataDir, 'build/tmp'))).toEqual([]);
  });

  it('a RUN whose container cannot start fails as that step', async () => {
    const err = await build({
      contextDir: ctx('escape'),
      dockerfile: 'FROM library/busybox:latest\nUSER nosuchuser\nRUN true\n',
      tag: { repo: 'test/baduser', tag: 'v1' },
      runtime: h.runtime,
      store: h.store,
      dataDir: h.dataDir,
    }).then(
      () => null,
      (e: unknown) => e as { code: string; details: Record<string, unknown>; message: string },
    );
    expect(err?.code).toBe('BuildFailed');
    expect(err?.details).toMatchObject({ step: 3, instruction: 'RUN true' });
    expect(err?.message).toContain('nosuchuser');
  });
});

// Issue 16, pulling images: an app whose Dockerfile says `FROM python:3.12-slim` deploys on a
// box whose daemon has `--registry-mirror` pointing at a local docker-registry holding that
// name as a multi-platform index (the "python" image is busybox with httpd: what matters is
// the name, the index and the pull). The build shows the pull; the next build does not pull
// again. A private registry's `FROM 127.0.0.1:PORT/team/base:1` fails clearly until
// `paas registry:login`, then builds. Nothing here reaches the internet.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTar } from '../../src/registry/testing.ts';
import { testRootfs } from '../helpers/host.ts';
import {
  pushImage,
  startDockerRegistry,
  tarLayer,
  type DockerRegistry,
} from '../helpers/registry.ts';
import { appRepo, cli, get, push, remoteLines, startPaas, type Paas } from './harness.ts';

const CONFIG = {
  Env: ['PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PYTHON_VERSION=3.12.0'],
  Cmd: ['/bin/sh', '-c', 'exec httpd -f -p "$PORT" -h /www'],
};
const PASSWORD = 'pw-that-must-never-be-logged-9f3a';

let p: Paas;
let mirror: DockerRegistry;
let priv: DockerRegistry;
let busybox: Buffer;

beforeAll(async () => {
  [mirror, priv] = await Promise.all([
    startDockerRegistry(),
    startDockerRegistry({ user: 'team', password: PASSWORD }),
  ]);
  busybox = await tarLayer(testRootfs());
  await pushImage(`${mirror.host}/library/python:3.12-slim`, {
    layers: [busybox],
    config: CONFIG,
    platforms: [
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'amd64' },
    ],
  });
  await pushImage(
    `${priv.host}/team/base:1`,
    { layers: [busybox], config: CONFIG },
    { creds: `team:${PASSWORD}` },
  );
  // Each with a layer of its own: an image whose layers a release holds counts as used.
  for (const name of ['unused', 'cached'])
    await pushImage(`${mirror.host}/library/${name}:1`, {
      layers: [busybox, makeTar([{ path: `${name}.txt`, body: name }])],
      config: CONFIG,
    });
  p = await startPaas({ daemonArgs: ['--registry-mirror', mirror.url] });
}, 300_000);

afterAll(async () => {
  await p?.cleanup();
  await mirror?.stop();
  await priv?.stop();
});

describe('FROM an image the box does not have', () => {
  it('pulls python:3.12-slim through the mirror, deploys it, and does not pull it again', async () => {
    const repo = appRepo('python-slim');
    const first = await push(p, repo.dir, 'py');
    const lines = remoteLines(first).map((l) => l.trim());
    expect(first.code, `${first.stderr}\n${p.daemonLog().slice(-3000)}`).toBe(0);
    expect(lines).toContain(`Pulling python:3.12-slim from mirror ${mirror.host}`);
    expect(lines.some((l) => /Pulling python:3\.12-slim: 1\/1 layers, \d+ MB/.test(l))).toBe(true);
    expect((await get(p, 'py')).body).toBe('hello from a pulled base v1\n');
    const asked = mirror.requests('/v2/library/python/');
    expect(asked).toBeGreaterThan(0);

    repo.write('www/index.html', 'hello from a pulled base v2\n');
    repo.commit('v2');
    const second = await push(p, repo.dir, 'py');
    expect(second.code, second.stderr).toBe(0);
    expect(remoteLines(second).filter((l) => l.includes('Pulling'))).toEqual([]);
    expect(mirror.requests('/v2/library/python/')).toBe(asked);
    expect((await get(p, 'py')).body).toBe('hello from a pulled base v2\n');
  });

  it('a private registry image fails clearly before registry:login and builds after it', async () => {
    const repo = appRepo('python-slim');
    repo.write('Dockerfile', `FROM ${priv.host}/team/base:1\nCOPY www /www\n`);
    repo.write('www/index.html', 'private base\n');
    repo.commit('private base');
    const denied = await push(p, repo.dir, 'priv');
    expect(denied.code).not.toBe(0);
    expect(remoteLines(denied).join('\n')).toMatch(
      new RegExp(
        `cannot pull ${priv.host}/team/base:1: ${priv.host} requires credentials; log in with \`paas registry:login\``,
      ),
    );

    const wrong = await cli(
      p,
      ['registry:login', priv.host, '-u', 'team', '--password-stdin'],
      {},
      'nope\n',
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/login to 127\.0\.0\.1:\d+ failed: 401 for user team/);
    const ok = await cli(
      p,
      ['registry:login', priv.host, '-u', 'team', '--password-stdin'],
      {},
      `${PASSWORD}\n`,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(`Login Succeeded (${priv.host})\n`);
    const credFile = join(p.dataDir, 'registry-auth.json');
    expect(statSync(credFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(credFile, 'utf8')).toContain('"username": "team"');

    const built = await push(p, repo.dir, 'priv');
    expect(built.code, built.stderr).toBe(0);
    expect(remoteLines(built).map((l) => l.trim())).toContain(
      `Pulling ${priv.host}/team/base:1 from ${priv.host}`,
    );
    expect((await get(p, 'priv')).body).toBe('private base\n');
    // The password went to the registry and the 0600 file only.
    expect(p.daemonLog()).not.toContain(PASSWORD);

    const out = await cli(p, ['registry:logout', priv.host]);
    expect(out.stdout).toBe(`Removed login credentials for ${priv.host}\n`);
    expect(readFileSync(credFile, 'utf8')).not.toContain(PASSWORD);
  });

  it('images:pull refreshes a tag on demand', async () => {
    const r = await cli(p, ['images:pull', 'python:3.12-slim', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { digest: string; lines: string[] };
    expect(j.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(j.lines[0]).toBe(`Pulling python:3.12-slim from mirror ${mirror.host}`);
  });

  it('images:gc drops pulled images nothing uses, keeps those a release or the build cache uses', async () => {
    expect((await cli(p, ['images:pull', 'unused:1'])).code).toBe(0);
    // A failed build leaves a cache entry (the COPY) on `cached:1` and no image.
    const repo = appRepo('python-slim');
    repo.write('Dockerfile', 'FROM cached:1\nCOPY www /www\nRUN exit 3\n');
    repo.commit('fails after a cached step');
    expect((await push(p, repo.dir, 'cachedbase')).code).not.toBe(0);

    const gc = await cli(p, ['images:gc']);
    expect(gc.code, gc.stderr).toBe(0);
    const untagged = gc.stdout.split('\n').filter((l) => l.startsWith('untagged '));
    expect(untagged).toContain('untagged library/unused:1');
    expect(untagged.filter((l) => /python|team\/base|cached/.test(l))).toEqual([]);
    // The live releases still start from what was kept.
    expect((await cli(p, ['ps:restart', 'py'])).code).toBe(0);
    expect((await get(p, 'py')).body).toBe('hello from a pulled base v2\n');
    // What GC dropped is pulled again on demand.
    const before = mirror.requests('/v2/library/unused/manifests/');
    const again = await cli(p, ['images:pull', 'unused:1']);
    expect(again.code, again.stderr).toBe(0);
    expect(mirror.requests('/v2/library/unused/manifests/')).toBeGreaterThan(before);
  });
});

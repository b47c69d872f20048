// A pushed repo is untrusted (issue 15): its build runs under the daemon's --build-* limits
// and its tree under --max-push-size. End to end with the real daemon: a build that eats
// memory or forks without end fails naming the limit while another app keeps answering
// through the router, and a push whose files unpack past the limit is refused before any
// of it reaches the disk.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, push, remoteLines, requestLoop, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas({
    maxPushSize: '1m',
    daemonArgs: ['--build-memory', '48m', '--build-pids', '64', '--build-timeout', '20s'],
  });
  const web = appRepo('busybox-web');
  const r = await push(p, web.dir, 'steady');
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await p?.cleanup();
});

const releases = async (app: string) =>
  JSON.parse((await cli(p, ['releases', app, '--json'])).stdout) as unknown[];

/** What a push may leave behind in the data dir while it is being built or refused. */
function scratch(): string[] {
  const tmp = join(p.dataDir, 'tmp');
  const build = join(p.dataDir, 'build', 'tmp');
  return [
    ...(existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('checkout-')) : []),
    ...(existsSync(build) ? readdirSync(build) : []),
  ];
}

describe('builds run under the daemon limits while other apps keep serving', () => {
  it('a RUN that allocates without bound fails at --build-memory; the other app answers throughout', async () => {
    const repo = appRepo('busybox-web');
    repo.write('Dockerfile', 'FROM busybox\nRUN x=0123456789; while :; do x=$x$x; done\n');
    repo.commit('memory hog');
    const loop = requestLoop(p, 'steady', '/', { minRequests: 20 });
    const r = await push(p, repo.dir, 'hog');
    await loop.end();
    expect(r.code).not.toBe(0);
    expect(remoteLines(r).join('\n')).toMatch(
      /step 2 ran out of memory: it reached the build memory limit of 48 MiB \(daemon flag --build-memory\)/,
    );
    expect(loop.failures).toEqual([]);
    expect(await releases('hog')).toEqual([]);
    expect(scratch()).toEqual([]);
  });

  it('a fork bomb in a RUN stops at --build-pids; the other app answers throughout', async () => {
    const repo = appRepo('busybox-web');
    repo.write('Dockerfile', 'FROM busybox\nRUN f() { f | f & }; while :; do f; done\n');
    repo.commit('fork bomb');
    const loop = requestLoop(p, 'steady', '/', { minRequests: 20 });
    const r = await push(p, repo.dir, 'bomb');
    await loop.end();
    expect(r.code).not.toBe(0);
    expect(remoteLines(r).join('\n')).toMatch(
      /step 2 reached the build pids limit of 64 processes and threads \(daemon flag --build-pids\)/,
    );
    expect(loop.failures).toEqual([]);
    expect(scratch()).toEqual([]);
  });
});

describe('--max-push-size', () => {
  it('refuses a small pack whose files unpack past the limit, before extracting anything', async () => {
    const repo = appRepo('busybox-web');
    // 32 MiB of zeros: git compresses it to a pack of a few kilobytes, far under the
    // 1 MiB limit that receive.maxInputSize enforces, so only the tree's size can refuse it.
    execFileSync('truncate', ['-s', '32M', 'www/zeros.bin'], { cwd: repo.dir });
    const sha = repo.commit('zeros');
    const r = await push(p, repo.dir, 'expands');
    expect(r.code).not.toBe(0);
    expect(remoteLines(r).join('\n')).toMatch(
      new RegExp(
        `push failed: the files of commit ${sha.slice(0, 7)} total 32 MiB, more than the 1 MiB a push may hold \\(daemon flag --max-push-size\\)`,
      ),
    );
    expect(await releases('expands')).toEqual([]);
    // Nothing left: no checkout or build scratch, and git dropped the quarantined objects.
    expect(scratch()).toEqual([]);
    const gitDir = join(p.dataDir, 'git', 'expands.git');
    expect(() =>
      execFileSync('git', ['--git-dir', gitDir, 'cat-file', '-e', sha], { stdio: 'ignore' }),
    ).toThrow();
    expect(readdirSync(join(gitDir, 'objects')).filter((d) => d.startsWith('tmp_objdir'))).toEqual(
      [],
    );
  });
});

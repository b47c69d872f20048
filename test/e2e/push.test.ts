// The product's main story, end to end: git push deploys, config changes and rollbacks make
// new releases, failed builds and crashing apps leave the live release serving, logs show it
// all, bad input changes nothing. Real daemon, router, runtime, builder, git and HTTP.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, DOMAIN, get, push, remoteLines, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas({ maxPushSize: '1m' });
});
afterAll(async () => {
  await p?.cleanup();
});

interface ReleaseJson {
  version: string;
  gitSha: string;
  status: string | null;
  description: string;
}
const releases = async (app: string) =>
  JSON.parse((await cli(p, ['releases', app, '--json'])).stdout) as ReleaseJson[];

describe('git push deploys', () => {
  const repo = appRepo('busybox-web');
  const shas: string[] = [];

  it('streams remote: lines while it builds and ends with the release and URL; the router serves the app', async () => {
    shas.push(execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo.dir }).toString().trim());
    const r = await push(p, repo.dir, 'web');
    expect(r.code, r.stderr).toBe(0);
    const lines = remoteLines(r);
    expect(lines.some((l) => l.includes('Step 2/3 : COPY www /www'))).toBe(true);
    expect(lines.some((l) => /Building done in [0-9.]+s/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe(`-----> Released v1: http://web.${DOMAIN}:${p.httpPort}/`);
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v1\n' });
  });

  it("streams a build step's output while the build still runs: no release exists yet when the line arrives", async () => {
    // Order, not wall time: when the RUN step's first line reaches the pusher, the daemon
    // is asked for the app's releases; buffered output would only arrive after v1 exists.
    const live = appRepo('busybox-web');
    live.write(
      'Dockerfile',
      // The step prints "begun-x" and "ended-x"; its own Step line shows only "begun-$0".
      "FROM busybox\nRUN sh -c 'echo begun-$0 && sleep 3 && echo ended-$0' x\nCOPY www /www\n" +
        'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n',
    );
    live.commit('slow step');
    let during: Promise<ReleaseJson[]> | null = null;
    const r = await push(p, live.dir, 'streamed', {
      onLine: (line) => {
        if (during === null && line.includes('begun-x')) during = releases('streamed');
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(during, "the step's first line was seen").not.toBeNull();
    expect(await during!).toEqual([]);
    const lines = remoteLines(r);
    const started = lines.findIndex((l) => l.includes('begun-x'));
    const done = lines.findIndex((l) => l.includes('ended-x'));
    expect(started).toBeGreaterThanOrEqual(0);
    expect(done).toBeGreaterThan(started);
    expect((await releases('streamed')).map((x) => x.version)).toEqual(['v1']);
  });

  it('a second push with changed code serves the new page; releases shows v1, v2 with their git shas', async () => {
    repo.write('www/index.html', 'hello from v2\n');
    shas.push(repo.commit('v2'));
    const r = await push(p, repo.dir, 'web');
    expect(r.code, r.stderr).toBe(0);
    expect(remoteLines(r).at(-1)).toContain('Released v2');
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v2\n' });
    const rs = await releases('web');
    expect(rs.map((x) => [x.version, x.gitSha])).toEqual([
      ['v2', shas[1]],
      ['v1', shas[0]],
    ]);
    const table = (await cli(p, ['releases', 'web'])).stdout;
    expect(table).toContain(shas[1]!.slice(0, 7));
  });

  it('config:set makes v3 and the app sees the new env', async () => {
    expect((await get(p, 'web', '/env.txt')).body).toBe('GREETING=unset\n');
    const r = await cli(p, ['config:set', 'web', 'GREETING=hi there']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('v3');
    expect((await get(p, 'web', '/env.txt')).body).toBe('GREETING=hi there\n');
    expect((await cli(p, ['config:get', 'web', 'GREETING'])).stdout).toBe('hi there\n');
    expect((await releases('web'))[0]).toMatchObject({
      version: 'v3',
      gitSha: shas[1],
      status: 'succeeded',
    });
  });

  it("rollback v1 serves v1's code with v1's config as a new release", async () => {
    const r = await cli(p, ['rollback', 'web', 'v1']);
    expect(r.code, r.stderr).toBe(0);
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v1\n' });
    expect((await get(p, 'web', '/env.txt')).body).toBe('GREETING=unset\n');
    const rs = await releases('web');
    expect(rs[0]).toMatchObject({
      version: 'v4',
      gitSha: shas[0],
      description: 'Rollback to v1',
      status: 'succeeded',
    });
    expect(JSON.parse((await cli(p, ['config', 'web', '--json'])).stdout)).toEqual({});
    // Old releases are untouched.
    expect(rs.find((x) => x.version === 'v3')).toMatchObject({
      gitSha: shas[1],
      description: 'Config change: GREETING',
    });
  });

  it('a push whose build fails exits non-zero with the failing step; the live release keeps answering', async () => {
    repo.write(
      'Dockerfile',
      'FROM busybox\nRUN echo "compiling assets" && echo "error: assets/app.css: no such file" >&2 && exit 3\nCMD ["httpd", "-f", "-p", "5000"]\n',
    );
    repo.commit('broken build');
    const r = await push(p, repo.dir, 'web');
    expect(r.code).not.toBe(0);
    const lines = remoteLines(r);
    expect(lines.join('\n')).toContain('error: assets/app.css: no such file');
    expect(lines.join('\n')).toMatch(/push failed: .*step 2.*exit code 3/);
    expect(lines.at(-1)).toContain('v4 is still live');
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v1\n' });
    const builds = JSON.parse((await cli(p, ['builds', 'web', '--json'])).stdout) as {
      status: string;
    }[];
    expect(builds[0]!.status).toBe('failed');
  });

  it('a push whose app crashes on start exits non-zero; the live release keeps answering', async () => {
    repo.write(
      'Dockerfile',
      'FROM busybox\nCMD ["/bin/sh", "-c", "echo boom: DATABASE_URL is not set >&2; exit 1"]\n',
    );
    repo.commit('crashes');
    const r = await push(p, repo.dir, 'web');
    expect(r.code).not.toBe(0);
    const text = remoteLines(r).join('\n');
    expect(text).toMatch(/web\.1 exited with code 1 before it accepted connections/);
    expect(text).toContain('boom: DATABASE_URL is not set');
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v1\n' });
    const rs = await releases('web');
    expect(rs[0]).toMatchObject({ version: 'v5', status: 'failed' });
    expect(JSON.parse((await cli(p, ['apps:info', 'web', '--json'])).stdout).release).toBe('v4');
    // Repair: the next good push deploys.
    execFileSync('git', ['checkout', '-q', shas[1]!, '--', '.'], { cwd: repo.dir });
    repo.commit('fixed');
    const ok = await push(p, repo.dir, 'web');
    expect(ok.code, ok.stderr).toBe(0);
    expect(await get(p, 'web')).toEqual({ status: 200, body: 'hello from v2\n' });
  });

  it('stores other branches without deploying and refuses to delete main', async () => {
    const before = (await releases('web')).length;
    const r = await push(p, repo.dir, 'web', { ref: 'main:feature' });
    expect(r.code, r.stderr).toBe(0);
    expect(remoteLines(r).join('\n')).toContain('feature stored; only main or master deploys');
    const del = await push(p, repo.dir, 'web', { ref: ':main' });
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('deleting main is not allowed');
    expect((await releases('web')).length).toBe(before);
  });

  it('shows build, app, router and platform lines in logs, filtered by --source and --ps, and follows with -t', async () => {
    await get(p, 'web', '/?from-logs-test');
    // The router writes its access log in batches: poll (bounded) rather than sleep a guess.
    let all = '';
    for (let i = 0; i < 100; i++) {
      all = (await cli(p, ['logs', 'web', '-n', '1000'])).stdout;
      if (all.includes('path="/?from-logs-test"')) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(all).toMatch(/^\S+Z app\[build\]: Step 1\/2 : FROM busybox$/m);
    expect(all).toMatch(/^\S+Z app\[web\.1\]: listening on 5000$/m);
    expect(all).toMatch(/^\S+Z router: method=GET path="\/\?from-logs-test" .*status=200/m);
    expect(all).toMatch(/^\S+Z paas: Released v\d+/m);
    const build = (await cli(p, ['logs', 'web', '--source', 'build', '-n', '5'])).stdout
      .trim()
      .split('\n');
    expect(build).toHaveLength(5);
    expect(build.every((l) => l.includes(' app[build]: '))).toBe(true);
    const web = (await cli(p, ['logs', 'web', '--ps', 'web'])).stdout.trim().split('\n');
    expect(web.every((l) => / app\[web\.\d+\]: /.test(l))).toBe(true);
    // -t: a request made after the follow started shows up while it is still running.
    const { spawn } = await import('node:child_process');
    const f = spawn('bin/paas', ['logs', 'web', '-t', '-n', '0', '--source', 'router'], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let followed = '';
    f.stdout.on('data', (d: Buffer) => (followed += d.toString()));
    // The follow prints nothing until a line arrives (-n 0), so there is no sign of when it is
    // listening: request until one request shows up while it runs (bounded: 100 tries).
    for (let i = 0; i < 100 && !followed.includes('path="/followed"'); i++) {
      await get(p, 'web', '/followed');
      await new Promise((r) => setTimeout(r, 300));
    }
    f.kill('SIGINT');
    expect(followed).toContain('path="/followed"');
  });
});

describe('bad input gets clear errors and changes nothing', () => {
  it('invalid app names', async () => {
    const r = await cli(p, ['apps:create', 'Bad_Name']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('app name "Bad_Name" is invalid');
    const repo = appRepo('busybox-web');
    const pr = await push(p, repo.dir, 'Bad_Name');
    expect(pr.code).not.toBe(0);
    expect(pr.stderr).toContain('app name "Bad_Name" is invalid');
    expect(
      JSON.parse((await cli(p, ['apps:list', '--json'])).stdout).map(
        (a: { name: string }) => a.name,
      ),
    ).not.toContain('Bad_Name');
  });

  it('a wrong token', async () => {
    const r = await cli(p, ['apps:list'], { PAAS_TOKEN: 'wrong' });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('a valid API token is required');
    const repo = appRepo('busybox-web');
    const pr = await push(p, repo.dir, 'sneaky', { token: 'wrong' });
    expect(pr.code).not.toBe(0);
    expect(pr.stderr).toMatch(/Authentication failed|authentication required/);
    const res = await fetch(`http://127.0.0.1:${p.apiPort}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('x:wrong').toString('base64')}` },
    });
    expect(res.status).toBe(401);
    expect((await cli(p, ['apps:list', '--json'])).stdout).not.toContain('sneaky');
  });

  it('config:set with invalid keys', async () => {
    const before = await releases('web');
    const r = await cli(p, ['config:set', 'web', 'GOOD=1', 'BAD-KEY=2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config key "BAD-KEY" is invalid');
    const api = await fetch(`http://127.0.0.1:${p.apiPort}/api/apps/web/config`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ set: { GOOD: '1', '1BAD': '2' } }),
    });
    expect(api.status).toBe(400);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('InvalidConfigKey');
    expect(await releases('web')).toEqual(before);
    expect(JSON.parse((await cli(p, ['config', 'web', '--json'])).stdout)).not.toHaveProperty(
      'GOOD',
    );
  });

  it('a push to a destroyed app', async () => {
    const repo = appRepo('busybox-web');
    expect((await push(p, repo.dir, 'doomed')).code).toBe(0);
    expect((await cli(p, ['apps:destroy', 'doomed'])).code).toBe(2); // --force required
    const d = await cli(p, ['apps:destroy', 'doomed', '--force']);
    expect(d.code, d.stderr).toBe(0);
    expect((await get(p, 'doomed')).status).toBe(404);
    const r = await push(p, repo.dir, 'doomed');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('app "doomed" was destroyed');
    expect((await cli(p, ['apps:info', 'doomed'])).code).toBe(3);
  });

  it('a push larger than the limit', async () => {
    const repo = appRepo('busybox-web');
    execFileSync('sh', ['-c', 'head -c 3000000 /dev/urandom > blob.bin'], { cwd: repo.dir });
    repo.commit('huge');
    const r = await push(p, repo.dir, 'huge');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('pack exceeds maximum allowed size');
    expect(await releases('huge')).toEqual([]);
  });
});

describe('a pushed repo is untrusted', () => {
  it('COPY aimed at host files through symlinks and .. lands inside the image; nothing outside the data dir changes', async () => {
    const canary = mkdtempSync(join(tmpdir(), 'paas-canary-e2e-'));
    mkdirSync(join(canary, 'cron.d'));
    writeFileSync(join(canary, 'cron.d/keep'), 'host cron\n');
    writeFileSync(join(canary, 'victim'), 'host file\n');
    const snapshot = (): string =>
      execFileSync('sh', ['-c', 'find . -printf "%p %m %T@ %s\\n" | sort; cat victim cron.d/*'], {
        cwd: canary,
      }).toString();
    const before = snapshot();
    try {
      const repo = appRepo('busybox-web');
      // Source b's `sub` stays inside the checkout where it sits (45 levels deep); placed at
      // the top of the layer its `..`s would climb to the host's root and on to the canary.
      const deep = Array.from({ length: 45 }, (_, i) => `d${i}`).join('/');
      mkdirSync(join(repo.dir, deep, 'b'), { recursive: true });
      symlinkSync(`${'../'.repeat(40)}${canary.slice(1)}/cron.d`, join(repo.dir, deep, 'b/sub'));
      mkdirSync(join(repo.dir, 'a/sub'), { recursive: true });
      mkdirSync(join(repo.dir, 'c/sub'), { recursive: true });
      repo.write('a/sub/first', 'a\n');
      repo.write('c/sub/pwned', '* * * * * root echo pwned\n');
      repo.write('x', 'replaced\n');
      repo.write('.dockerignore', 'c/sub\n!c/sub/pwned\n');
      repo.write(
        'Dockerfile',
        `FROM busybox\nCOPY a ${deep}/b c /\nCOPY x /nope/${'../'.repeat(20)}${canary.slice(1)}/victim\n` +
          'COPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n',
      );
      repo.commit('hostile paths');
      const r = await push(p, repo.dir, 'hostile');
      expect(r.code, r.stderr).toBe(0);
      expect(snapshot()).toBe(before);
      const inside = await cli(p, [
        'run',
        'hostile',
        '--no-tty',
        '--',
        'cat',
        `${canary}/cron.d/pwned`,
        `${canary}/victim`,
      ]);
      expect(inside.stdout).toBe('* * * * * root echo pwned\nreplaced\n');
    } finally {
      rmSync(canary, { recursive: true, force: true });
    }
  });
});

describe('release phase', () => {
  it('runs app.json predeploy and Procfile release before the switch; a failure aborts the deploy', async () => {
    const repo = appRepo('busybox-web');
    repo.write(
      'Procfile',
      'web: exec httpd -f -p "$PORT" -h /www\nrelease: echo "migrating for $PAAS_RELEASE"\n',
    );
    repo.write(
      'app.json',
      JSON.stringify({ scripts: { dokku: { predeploy: 'echo predeploy ran in $(hostname)' } } }),
    );
    repo.commit('release phase');
    const ok = await push(p, repo.dir, 'phased');
    expect(ok.code, ok.stderr).toBe(0);
    const text = remoteLines(ok).join('\n');
    expect(text).toMatch(/\$ app\.json predeploy\n\s+predeploy ran in phased\.release\.run/);
    expect(text).toMatch(/\$ Procfile release\n\s+migrating for v1/);
    expect(text.indexOf('migrating for v1')).toBeLessThan(text.indexOf('Switching route'));
    expect((await get(p, 'phased')).body).toBe('hello from v1\n');

    repo.write(
      'Procfile',
      'web: exec httpd -f -p "$PORT" -h /www\nrelease: echo "migration failed" >&2; exit 4\n',
    );
    repo.write('www/index.html', 'never served\n');
    repo.commit('bad migration');
    const bad = await push(p, repo.dir, 'phased');
    expect(bad.code).not.toBe(0);
    expect(remoteLines(bad).join('\n')).toMatch(
      /Procfile release failed with exit code 4; the deploy was aborted/,
    );
    expect((await get(p, 'phased')).body).toBe('hello from v1\n');
  });
});

describe('domains', () => {
  it('routes a custom domain after domains:add and stops after domains:remove', async () => {
    const repo = appRepo('busybox-web');
    expect((await push(p, repo.dir, 'branded')).code).toBe(0);
    const viaHost = (host: string) =>
      new Promise<number>((resolve) => {
        void import('node:http').then(({ request }) => {
          const req = request(
            { host: '127.0.0.1', port: p.httpPort, path: '/', headers: { host } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', () => resolve(0));
          req.end();
        });
      });
    expect(await viaHost('www.branded.example')).not.toBe(200);
    const add = await cli(p, ['domains:add', 'branded', 'www.branded.example']);
    expect(add.code, add.stderr).toBe(0);
    expect(await viaHost('www.branded.example')).toBe(200);
    expect(JSON.parse((await cli(p, ['domains', 'branded', '--json'])).stdout)).toEqual({
      default: `branded.${DOMAIN}`,
      custom: ['www.branded.example'],
    });
    const bad = await cli(p, ['domains:add', 'branded', 'bad_name.example']);
    expect(bad.code).toBe(2);
    expect((await cli(p, ['domains:remove', 'branded', 'www.branded.example'])).code).toBe(0);
    expect(await viaHost('www.branded.example')).not.toBe(200);
  });
});

// Processes (issue 7), end to end on a real daemon, router and runtime: formation and
// scaling, zero-downtime deploys and restarts under a request loop, a failing health check,
// the restart policy (backoff, crash loop, OOM), resources and `paas run` with stdin.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/runtime/index.ts';
import { REPO, waitFor } from '../helpers/host.ts';
import {
  appRepo,
  cli,
  get,
  push,
  remoteLines,
  requestLoop,
  startPaas,
  type Paas,
} from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
});

interface Proc {
  process: string;
  type: string;
  release: string;
  state: string;
  restarts: number;
  lastExit: string | null;
  ip: string | null;
  memoryLimitBytes: number | null;
  memoryBytes: number | null;
  uptimeSeconds: number | null;
  id: string;
}
const ps = async (app: string): Promise<Proc[]> => {
  const r = await cli(p, ['ps', app, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Proc[];
};
const logs = async (app: string) => (await cli(p, ['logs', app, '-n', '2000'])).stdout;

describe('formation', () => {
  const repo = appRepo('procs');

  it('a push starts web=1 and no other type; ps lists it with release, state, address and usage', async () => {
    const r = await push(p, repo.dir, 'procs');
    expect(r.code, r.stderr).toBe(0);
    const procs = await ps('procs');
    expect(procs.map((x) => [x.process, x.release, x.state])).toEqual([['web.1', 'v1', 'running']]);
    expect(procs[0]!.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(procs[0]!.memoryBytes).toBeGreaterThan(0);
    const table = (await cli(p, ['ps', 'procs'])).stdout;
    expect(table).toMatch(
      /^PROCESS\s+RELEASE\s+STATE\s+UPTIME\s+RESTARTS\s+ADDRESS\s+MEMORY\s+CPU/m,
    );
    expect(table).toMatch(/web\.1\s+v1\s+running\s+\S+\s+0\s+[\d.]+:5000/);
  });

  it('ps:scale up converges and load spreads across web.1..3; scale down stops just the difference', async () => {
    const up = await cli(p, ['ps:scale', 'procs', 'web=3', 'worker=1']);
    expect(up.code, up.stderr).toBe(0);
    const procs = await ps('procs');
    expect(procs.map((x) => [x.process, x.state])).toEqual([
      ['web.1', 'running'],
      ['web.2', 'running'],
      ['web.3', 'running'],
      ['worker.1', 'running'],
    ]);
    const web1 = procs[0]!.id;
    const seen = new Set<string>();
    for (let i = 0; i < 60 && seen.size < 3; i++) {
      const r = await get(p, 'procs', '/who.txt');
      expect(r.status).toBe(200);
      seen.add(r.body.split(' ')[0]!);
    }
    expect([...seen].sort()).toEqual(['procs.web.1', 'procs.web.2', 'procs.web.3']);
    expect(JSON.parse((await cli(p, ['ps:scale', 'procs', '--json'])).stdout)).toEqual({
      web: 3,
      worker: 1,
    });

    const down = await cli(p, ['ps:scale', 'procs', 'web=1', 'worker=0']);
    expect(down.code, down.stderr).toBe(0);
    const after = await ps('procs');
    expect(after.map((x) => x.process)).toEqual(['web.1']);
    // Only the difference changed: web.1 is the same container.
    expect(after[0]!.id).toBe(web1);
    const containers = (await createRuntime('native', { dataDir: p.dataDir }).list()).filter(
      (c) => c.labels.app === 'procs',
    );
    expect(containers.map((c) => c.id)).toEqual([web1]);
    for (let i = 0; i < 5; i++)
      expect((await get(p, 'procs', '/who.txt')).body).toBe('procs.web.1 v1\n');
  });

  it('web=0 takes the app out of the route (503), web=1 brings it back; unknown types are refused', async () => {
    expect((await cli(p, ['ps:scale', 'procs', 'web=0'])).code).toBe(0);
    expect((await get(p, 'procs')).status).toBe(503);
    expect(await ps('procs')).toEqual([]);
    expect((await cli(p, ['ps:scale', 'procs', 'web=1'])).code).toBe(0);
    expect((await get(p, 'procs')).status).toBe(200);
    const bad = await cli(p, ['ps:scale', 'procs', 'nosuch=1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('has no process type "nosuch"');
  });

  it('ps:stop takes every process down and out of the route (503) until ps:start restores the formation', async () => {
    const stop = await cli(p, ['ps:stop', 'procs']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await ps('procs')).toEqual([]);
    expect((await get(p, 'procs')).status).toBe(503);
    expect(await logs('procs')).toContain('stopping every process (ps:stop)');
    const start = await cli(p, ['ps:start', 'procs']);
    expect(start.code, start.stderr).toBe(0);
    expect((await ps('procs')).map((x) => [x.process, x.state])).toEqual([['web.1', 'running']]);
    expect((await get(p, 'procs')).status).toBe(200);
    expect(await logs('procs')).toContain('starting the formation (ps:start)');
  });
});

describe('ps:restart of one type', () => {
  it('replaces just that type while the others keep running; an unknown type is refused', async () => {
    expect((await cli(p, ['ps:scale', 'procs', 'worker=1'])).code).toBe(0);
    const before = await ps('procs');
    const id = (list: Proc[], name: string) => list.find((x) => x.process === name)?.id;
    const r = await cli(p, ['ps:restart', 'procs', 'worker']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Restarting worker of procs');
    const after = await ps('procs');
    expect(after.map((x) => [x.process, x.state])).toEqual([
      ['web.1', 'running'],
      ['worker.1', 'running'],
    ]);
    expect(id(after, 'web.1')).toBe(id(before, 'web.1'));
    expect(id(after, 'worker.1')).not.toBe(id(before, 'worker.1'));
    expect((await get(p, 'procs')).status).toBe(200);
    const bad = await cli(p, ['ps:restart', 'procs', 'nosuch']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('has no process type "nosuch"');
    expect((await cli(p, ['ps:scale', 'procs', 'worker=0'])).code).toBe(0);
  });
});

describe('restart policy', () => {
  it('a process that exits is restarted with growing backoff; a crash loop shows as crashed in ps and logs', async () => {
    expect((await cli(p, ['ps:scale', 'procs', 'crasher=1'])).code).toBe(0);
    const crashed = await waitFor(
      'crasher.1 to be marked crashed',
      async () => {
        const c = (await ps('procs')).find((x) => x.process === 'crasher.1');
        return c?.state === 'crashed' ? c : null;
      },
      40_000,
    );
    expect(crashed.restarts).toBeGreaterThanOrEqual(2);
    expect(crashed.lastExit).toBe('exited with code 3');
    const text = await logs('procs');
    const lines = text
      .split('\n')
      .filter((l) => / paas: crasher\.1: v1 exited with code 3; /.test(l));
    expect(lines[0]).toContain('restarting now');
    expect(lines[1]).toContain('restarting in 1s');
    expect(lines[2]).toContain('restarting in 2s');
    // The announced wait really happened: the third crash came no sooner than 1 s after the
    // second (a lower bound a busy box can only lengthen, never a ceiling).
    const at = lines.slice(0, 3).map((l) => Date.parse(l.split(' ')[0]!));
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(1000);
    expect(text).toMatch(/paas: crasher\.1: State changed from \w+ to crashed/);
    expect(text).toContain('app[crasher.1]: crasher dies');
    // The CLI shows it too. Crashed is the state between two tries (the loop goes on, with
    // a longer wait each time), so a later look may catch a try starting: look until one
    // falls in a wait.
    await waitFor(
      'ps to show crasher.1 crashed',
      async () => /crasher\.1\s+v1\s+crashed/.test((await cli(p, ['ps', 'procs'])).stdout),
      40_000,
    );
    // The counts outlive the daemon: after a kill -9 and a restart ps shows the same history.
    const exited = new Promise((r) => p.daemon.once('exit', r));
    p.kill9();
    await exited;
    await p.start();
    const after = (await ps('procs')).find((x) => x.process === 'crasher.1');
    expect(after?.restarts).toBeGreaterThanOrEqual(crashed.restarts);
    expect(after?.lastExit).toBe('exited with code 3');
    expect((await cli(p, ['ps:scale', 'procs', 'crasher=0'])).code).toBe(0);
    expect((await ps('procs')).map((x) => x.process)).toEqual(['web.1']);
  });

  it('resources:set limits memory at the next start; an OOM kill is reported as such', async () => {
    const set = await cli(p, ['resources:set', 'procs', '--memory', '48m', '--ps', 'hog']);
    expect(set.code, set.stderr).toBe(0);
    expect((await cli(p, ['ps:scale', 'procs', 'hog=1'])).code).toBe(0);
    const hog = (await ps('procs')).find((x) => x.process === 'hog.1');
    expect(hog?.memoryLimitBytes).toBe(48 * 1024 * 1024);
    // web has no limit of its own: it runs under the daemon's default (--default-memory).
    expect((await ps('procs')).find((x) => x.process === 'web.1')?.memoryLimitBytes).toBe(
      512 * 1024 * 1024,
    );
    const line = await waitFor(
      'the OOM kill in the logs',
      async () =>
        (await logs('procs'))
          .split('\n')
          .find((l) => l.includes('hog.1: v1 was killed: out of memory (OOM)')),
      20_000,
    );
    expect(line).toContain('restarting');
    expect((await ps('procs')).find((x) => x.process === 'hog.1')?.lastExit).toBe(
      'was killed: out of memory (OOM)',
    );
    expect(await logs('procs')).not.toContain('app[hog.1]: survived');
    expect((await cli(p, ['ps:scale', 'procs', 'hog=0'])).code).toBe(0);
  });
});

describe('paas run', () => {
  const run = (args: string[], input: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(`${REPO}/bin/paas`, ['run', ...args], {
        env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
      });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      c.stdin.end(input);
    });

  it('returns the exit status and output of a one-off container of the current release; stdin works', async () => {
    const r = await run(
      [
        'procs',
        '--',
        'sh',
        '-c',
        'read a; read b; echo "got $a and $b in $(hostname) of $PAAS_RELEASE"; cat /www/index.html; echo to-stderr >&2; exit 7',
      ],
      'first\nsecond\n',
    );
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('got first and second in procs.run.run of v1\nhello from procs v1\n');
    expect(r.stderr).toBe('to-stderr\n');
    const ok = await run(['procs', '--', 'true'], '');
    expect(ok.code).toBe(0);
    // The containers are gone afterwards.
    const left = (await createRuntime('native', { dataDir: p.dataDir }).list()).filter(
      (c) => c.labels.oneoff === '1',
    );
    expect(left).toEqual([]);
    const none = await run(['nosuchapp', '--', 'true'], '');
    expect(none.code).toBe(3);
  });

  /** The CLI at a terminal: `script` gives it a pty of 30x100; `keys` are typed once `ready` shows. */
  const atTerminal = (args: string[], keys: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const cmd = `stty rows 30 cols 100; exec ${REPO}/bin/paas run ${args.map((a) => `'${a}'`).join(' ')}`;
      const c = spawn('script', ['-qfec', cmd, '/dev/null'], {
        env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
      });
      let out = '';
      c.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready') && keys.length > 0) c.stdin.write(keys.shift()!);
      });
      // Node's raw mode keeps the outer terminal's ONLCR, so our CRLF shows as CR CR LF there.
      c.on('close', (code) => resolve({ code: code ?? -1, out: out.replace(/\r+\n/g, '\n') }));
    });

  it('at a terminal, the command gets one of the same size: keystrokes, ^C and the exit status pass', async () => {
    const r = await atTerminal(
      ['procs', '--', 'sh', '-c', 'tty; stty size; echo ready; read a; echo "got $a"; exit 3'],
      ['typed\r'],
    );
    expect(r.code).toBe(3);
    expect(r.out).toContain('/dev/pts/0\n30 100\nready\n');
    expect(r.out).toContain('got typed\n');
    const c = await atTerminal(
      ['procs', '--', 'sh', '-c', 'echo ready; sleep 30; echo not-interrupted'],
      ['\x03'],
    );
    expect(c.code).toBe(130);
    expect(c.out).not.toContain('not-interrupted');
    // --no-tty keeps pipes even at a terminal.
    const n = await atTerminal(['procs', '--no-tty', '--', 'sh', '-c', 'tty; exit 0'], []);
    expect(n.out).toContain('not a tty');
    expect(n.code).toBe(0);
  });

  it('refuses a malformed terminal size or terminal stream with a clear error', async () => {
    const url = `http://127.0.0.1:${p.apiPort}/api/apps/procs/run?command=${encodeURIComponent('["true"]')}&tty=0x80`;
    const r = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/octet-stream' },
      body: '',
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain(
      'tty must be ROWSxCOLS',
    );
    // A frame claiming 4 GiB ends the run instead of being buffered.
    const bad = await fetch(
      url
        .replace('tty=0x80', 'tty=24x80')
        .replace(encodeURIComponent('["true"]'), encodeURIComponent('["sleep","3600"]')),
      {
        method: 'POST',
        headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/octet-stream' },
        body: Buffer.from([4, 0xff, 0xff, 0xff, 0xff]),
      },
    );
    expect(bad.status).toBe(200);
    const text = Buffer.from(await bad.arrayBuffer()).toString('latin1');
    expect(text).toContain('paas: frame of 4294967295 bytes is over the limit of 65536');
    // …and the run was killed at once: the response ended, where an unkilled `sleep 3600`
    // would have held it past the test's timeout.
  });
});

describe('zero-downtime deploys', () => {
  // Ten back-to-back deploys and a rolling restart under a request loop: zero-downtime.test.ts
  // (its own file, so the e2e-node project runs it on the node plane too).
  it('a release whose health check fails never receives traffic; the old one keeps serving; the push fails with the reason', async () => {
    const repo = appRepo('procs');
    expect((await push(p, repo.dir, 'guarded')).code).toBe(0);
    repo.write(
      'app.json',
      JSON.stringify({
        healthchecks: {
          web: [
            {
              type: 'startup',
              name: 'health endpoint',
              path: '/health',
              attempts: 3,
              wait: 1,
              timeout: 2,
            },
          ],
        },
      }),
    );
    repo.write('www/index.html', 'never served\n');
    repo.commit('check fails');
    const loop = requestLoop(p, 'guarded');
    let r;
    try {
      r = await push(p, repo.dir, 'guarded');
    } finally {
      await loop.end();
    }
    expect(r.code).not.toBe(0);
    const text = remoteLines(r).join('\n');
    expect(text).toContain(
      'health check "health endpoint" of web.1 failed after 3 attempts: GET /health answered 404',
    );
    expect(text).toMatch(/v1 is still live/);
    expect(loop.failures).toEqual([]);
    expect([...loop.bodies.keys()]).toEqual(['hello from procs v1\n']);
    const rs = JSON.parse((await cli(p, ['releases', 'guarded', '--json'])).stdout) as {
      version: string;
      status: string;
    }[];
    expect(rs[0]).toMatchObject({ version: 'v2', status: 'failed' });
    expect((await ps('guarded')).map((x) => [x.process, x.release])).toEqual([['web.1', 'v1']]);
    // With the endpoint in place the same check passes.
    repo.write('www/health', 'ok\n');
    repo.commit('health endpoint');
    const ok = await push(p, repo.dir, 'guarded');
    expect(ok.code, ok.stderr).toBe(0);
    expect((await get(p, 'guarded')).body).toBe('never served\n');
  });
});

describe('images:gc', () => {
  it('--dry-run lists without removing; a real run keeps what live releases use', async () => {
    const dry = await cli(p, ['images:gc', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would free [\d.]+ MB/);
    const real = await cli(p, ['images:gc']);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/freed [\d.]+ MB/);
    // Everything live still starts: a restart pulls the live image's layers again.
    expect((await cli(p, ['ps:restart', 'guarded'])).code).toBe(0);
    expect((await get(p, 'guarded')).body).toBe('never served\n');
  });
});

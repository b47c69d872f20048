// `paas daemon --scheduler swarm` end to end (issue 22): a single-node Docker Swarm started
// here (a private dockerd, `docker swarm init`: test/helpers/swarm.ts), a real daemon and
// router, real pushes. The node pulls every release image from our registry with the token;
// each process type is a Swarm service; the router follows the web tasks. The same story as
// on one box: push, ps:scale, config:set, logs -t, run, a failed deploy rolled back,
// rollback, zero failed requests across redeploys, apps:destroy.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/host.ts';
import { startSwarm, type Swarm } from '../helpers/swarm.ts';
import {
  appRepo,
  cli,
  DOMAIN,
  get,
  push,
  remoteLines,
  requestLoop,
  startPaas,
  type Paas,
} from './harness.ts';

let swarm: Swarm;
let p: Paas;
beforeAll(async () => {
  swarm = await startSwarm();
  p = await startPaas({ daemonArgs: ['--scheduler', 'swarm', '--docker-socket', swarm.socket] });
});
afterAll(async () => {
  await p?.cleanup();
  await swarm?.stop();
});

const APP = 'sw';
const docker = async (...args: string[]) => {
  const r = await swarm.dockerd.docker(args);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
};
interface Proc {
  process: string;
  release: string;
  state: string;
  inRotation: boolean;
}
const ps = async (): Promise<string[]> => {
  const r = await cli(p, ['ps', APP, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Proc[]).map((x) => `${x.process}@${x.release}:${x.state}`);
};
/** The task host names (`sw.web.N`) that answered `n` requests through the router. */
async function answering(n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await get(p, APP, '/who.txt');
    expect(r.status, r.body).toBe(200);
    seen.add(r.body.trim());
  }
  return seen;
}

/**
 * POSTs through the router back to back until `end()` (bounded: 3000 requests, 90 s). The
 * router retries a GET that found its backend gone on another one, but never a POST: a
 * task stopped while still in the route fails these.
 */
function postLoop() {
  let stop = false;
  const failures: string[] = [];
  let count = 0;
  const t0 = Date.now();
  const one = (n: number) =>
    new Promise<string | null>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: p.httpPort,
          method: 'POST',
          path: '/cgi-bin/post',
          headers: { host: `${APP}.${DOMAIN}`, 'content-type': 'text/plain' },
          timeout: 10_000,
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () =>
            resolve(
              res.statusCode === 200 && body.startsWith(`post-${n} sw.web.`)
                ? null
                : `${res.statusCode} ${body.slice(0, 120)}`,
            ),
          );
          res.on('error', (e) => resolve(String(e)));
        },
      );
      req.on('error', (e) => resolve(String(e)));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(`post-${n}`);
    });
  const done = (async () => {
    while (!stop && count < 3000 && Date.now() - t0 < 90_000) {
      const sent = new Date().toISOString();
      const failed = await one(count);
      if (failed !== null) failures.push(`POST ${count} (sent ${sent}): ${failed}`);
      count++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    failures,
    get count() {
      return count;
    },
    async end() {
      const enough = Date.now() + 15_000;
      while (count < 20 && Date.now() < enough) await new Promise((r) => setTimeout(r, 50));
      stop = true;
      await done;
    },
  };
}

describe('an app on a single-node Swarm', () => {
  const repo = appRepo('swarm-web');

  it('a push makes one Swarm service per process type, pulled from our registry, served through our router', async () => {
    const r = await push(p, repo.dir, APP);
    expect(r.code, r.stderr).toBe(0);
    expect(remoteLines(r).join('\n')).toMatch(/Rolling sw_web to v1 \(1 task, start-first\)/);
    expect((await get(p, APP, '/who.txt')).body).toBe('sw.web.1 v1\n');
    const services = (await docker('service', 'ls', '--format', '{{.Name}} {{.Replicas}}'))
      .split('\n')
      .sort();
    // The worker type exists at formation 0 (Heroku's default), as on one box.
    expect(services).toEqual(['sw_web 1/1', 'sw_worker 0/0']);
    // The node runs the release's image (the tag its build made), pulled from paas's
    // registry on the API port.
    const image = `127.0.0.1:${p.apiPort}/${APP}:build-1`;
    expect(
      await docker(
        'service',
        'inspect',
        'sw_web',
        '--format',
        '{{.Spec.TaskTemplate.ContainerSpec.Image}}',
      ),
    ).toBe(image);
    expect(await docker('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}')).toContain(image);
    const spec = JSON.parse(await docker('service', 'inspect', 'sw_web')) as {
      Spec: {
        TaskTemplate: { RestartPolicy: { Condition: string }; Resources: { Limits: object } };
        UpdateConfig: { Order: string; FailureAction: string };
      };
    }[];
    // The pull token went as X-Registry-Auth only: inspecting the service does not show it.
    expect(JSON.stringify(spec)).not.toContain(p.token);
    expect(spec[0]!.Spec.TaskTemplate.RestartPolicy.Condition).toBe('on-failure');
    expect(spec[0]!.Spec.UpdateConfig).toMatchObject({
      Order: 'start-first',
      FailureAction: 'rollback',
    });
    // The daemon's default limits are the service's limits.
    expect(spec[0]!.Spec.TaskTemplate.Resources.Limits).toMatchObject({
      MemoryBytes: 512 * 1024 * 1024,
      Pids: 4096,
    });
    expect(await ps()).toEqual(['web.1@v1:running']);
  });

  it('ps:scale web=2 worker=1: Swarm runs the formation and the router reaches both web tasks', async () => {
    const r = await cli(p, ['ps:scale', APP, 'web=2', 'worker=1']);
    expect(r.code, r.stderr).toBe(0);
    expect(
      await docker(
        'service',
        'inspect',
        'sw_web',
        '--format',
        '{{.Spec.Mode.Replicated.Replicas}}',
      ),
    ).toBe('2');
    expect(await ps()).toEqual(['web.1@v1:running', 'web.2@v1:running', 'worker.1@v1:running']);
    const seen = await waitFor(
      'both web tasks answering through the router',
      async () => {
        const s = await answering(10);
        return s.size === 2 ? s : null;
      },
      60_000,
      500,
    );
    expect([...seen].sort()).toEqual(['sw.web.1 v1', 'sw.web.2 v1']);
  });

  it('config:set rolls a new release over every service; the config is in the env', async () => {
    const r = await cli(p, ['config:set', APP, 'GREETING=hello-swarm']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get(p, APP, '/env.txt')).body).toBe('GREETING=hello-swarm\n');
    expect(await answering(6)).toEqual(new Set(['sw.web.1 v2', 'sw.web.2 v2']));
    expect(await ps()).toEqual(['web.1@v2:running', 'web.2@v2:running', 'worker.1@v2:running']);
  });

  it('logs -t follows what the tasks write (the service logs)', async () => {
    const c = spawn('bin/paas', ['logs', APP, '-t', '-n', '50'], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(
        'the v2 worker line in logs -t',
        () => /worker\.1.*worker up with hello-swarm/.test(out),
        60_000,
        250,
      );
      // A line written after `logs -t` started arrives too: a new release's web says so.
      expect((await cli(p, ['config:set', APP, 'GREETING=followed'])).code).toBe(0);
      await waitFor(
        'the v3 worker line in logs -t',
        () => out.includes('worker up with followed'),
        60_000,
        250,
      );
      expect(out).toMatch(/web\.[12].*web up on/);
    } finally {
      c.kill();
    }
  });

  it('run: a one-off task of the release, with its config and exit code', async () => {
    const r = await cli(p, [
      'run',
      APP,
      '--no-tty',
      '--',
      'sh',
      '-c',
      'echo "run says $GREETING"; exit 3',
    ]);
    expect(r.stdout).toContain('run says followed');
    expect(r.code).toBe(3);
    // The one-off's service is gone again.
    expect(await docker('service', 'ls', '--format', '{{.Name}}')).not.toMatch(/sw_run_/);
  });

  it('ps:restart, ps:stop and ps:start say they are not there on Swarm yet, and change nothing', async () => {
    for (const verb of ['ps:restart', 'ps:stop', 'ps:start']) {
      const r = await cli(p, [verb, APP]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${verb} is not available with --scheduler swarm yet`);
    }
    expect(await ps()).toEqual(['web.1@v3:running', 'web.2@v3:running', 'worker.1@v3:running']);
  });

  it('a release whose web fails is rolled back by Swarm and fails the push; the old release keeps serving', async () => {
    const broken = appRepo('swarm-web');
    broken.write(
      'Procfile',
      'web: echo "broken on purpose" >&2; exit 1\nworker: exec sleep 100000\n',
    );
    broken.commit('broken');
    const r = await push(p, broken.dir, APP, { force: true });
    expect(r.code).not.toBe(0);
    const said = remoteLines(r).join('\n');
    expect(said).toMatch(/push failed: .*sw_web/);
    expect(said).toMatch(/v3 is still live/);
    expect(await answering(6)).toEqual(new Set(['sw.web.1 v3', 'sw.web.2 v3']));
    // Swarm's rollback may briefly run a slot's restored task beside its new one.
    const want = ['web.1@v3:running', 'web.2@v3:running', 'worker.1@v3:running'];
    let seen: unknown;
    await waitFor(
      'one task per slot of v3',
      async () => JSON.stringify((seen = await ps())) === JSON.stringify(want),
      60_000,
      1000,
    ).catch((e: Error) => {
      // What Swarm still ran, for the next reader of a failure.
      throw new Error(`${e.message}; last seen: ${JSON.stringify(seen)}`);
    });
  });

  it('rollback makes a new release of an old one, rolled over the services', async () => {
    const r = await cli(p, ['rollback', APP, 'v1']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get(p, APP, '/env.txt')).body).toBe('GREETING=unset\n');
    expect(await answering(6)).toEqual(new Set(['sw.web.1 v5', 'sw.web.2 v5']));
  });

  it('five redeploys (pushes and config changes) under a GET and a POST loop: no failed request', async () => {
    for (let i = 1; i <= 5; i++) {
      const loop = requestLoop(p, APP, '/who.txt', { minRequests: 20 });
      const posts = postLoop();
      try {
        if (i % 2 === 0) {
          repo.write('www/index.html', `code ${i}\n`);
          repo.commit(`code ${i}`);
          const r = await push(p, repo.dir, APP, { force: true });
          expect(r.code, r.stderr).toBe(0);
          expect((await get(p, APP)).body).toBe(`code ${i}\n`);
        } else {
          const r = await cli(p, ['config:set', APP, `GREETING=deploy-${i}`]);
          expect(r.code, r.stderr).toBe(0);
          expect((await get(p, APP, '/env.txt')).body).toBe(`GREETING=deploy-${i}\n`);
        }
      } finally {
        await Promise.all([loop.end(), posts.end()]);
      }
      expect(loop.failures).toEqual([]);
      expect(loop.count).toBeGreaterThanOrEqual(20);
      expect(posts.failures).toEqual([]);
      expect(posts.count).toBeGreaterThanOrEqual(20);
    }
    // The retired web tasks were drained, then stopped with SIGTERM (not killed at their grace).
    const logs = (await cli(p, ['logs', APP, '-n', '5000'])).stdout;
    expect(logs).toMatch(/web\.[12].*web got SIGTERM/);
  });

  it('a daemon restart leaves the tasks serving: the new daemon routes them before it publishes the table', async () => {
    const loop = requestLoop(p, APP, '/who.txt', { minRequests: 20 });
    try {
      await p.stop();
      await p.start();
      expect(await ps()).toEqual([
        'web.1@v10:running',
        'web.2@v10:running',
        'worker.1@v10:running',
      ]);
    } finally {
      await loop.end();
    }
    expect(loop.failures).toEqual([]);
    expect(await answering(6)).toEqual(new Set(['sw.web.1 v10', 'sw.web.2 v10']));
  });

  it('apps:destroy removes the services and their tasks', async () => {
    const r = await cli(p, ['apps:destroy', APP, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(await docker('service', 'ls', '--format', '{{.Name}}')).toBe('');
    expect(await docker('ps', '-q', '--filter', `label=paas.app=${APP}`)).toBe('');
    expect((await get(p, APP)).status).toBe(404);
  });
});

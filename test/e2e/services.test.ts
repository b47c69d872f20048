// Backing services (issue 21) with real Postgres 15 and Redis 7 from Debian's packages, run
// as containers of our runtime. The app is a Node app as users write it (test/fixtures/apps/
// svc-node: `pg`'s Pool and ioredis from the npm registry, given DATABASE_URL / REDIS_URL
// unchanged); every step goes through its HTTP endpoints. Rows and keys survive a redeploy,
// a service restart and a daemon kill -9; a backup restored into a new service returns them;
// an app that is not linked cannot connect even with the password.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/registry/index.ts';
import { makeTar } from '../../src/registry/testing.ts';
import { REPO } from '../helpers/host.ts';
import {
  pushImage,
  startDockerRegistry,
  tarLayer,
  type DockerRegistry,
} from '../helpers/registry.ts';
import { appRepo, cli, DOMAIN, get, push, requestLoop, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas({
    // node:22-slim for the app, postgres:15 and redis:7 from provision/base-images (cached:
    // an import of seconds).
    prepare: async (dataDir) => {
      await promisify(execFile)(
        join(REPO, 'provision', 'base-images'),
        ['--data-dir', dataDir, '--only', 'node,postgres,redis', '--quiet'],
        { timeout: 40 * 60_000, maxBuffer: 64 * 1024 * 1024 },
      );
    },
  });
}, 45 * 60_000);
afterAll(async () => {
  await p?.cleanup();
});

async function ok(args: string[], input?: string): Promise<string> {
  const r = await cli(p, args, {}, input);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** A request with any method through the router (get() is GET only). */
function send(
  method: string,
  app: string,
  path: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: p.httpPort,
        method,
        path,
        headers: { host: `${app}.${DOMAIN}` },
        timeout: 20_000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** GET until the app answers 200 (bounded): a restarted service takes a moment to accept. */
async function settled(app: string, path: string): Promise<{ status: number; body: string }> {
  let r = await get(p, app, path);
  for (let n = 0; n < 100 && r.status !== 200; n++) {
    await new Promise((res) => setTimeout(res, 300));
    r = await get(p, app, path);
  }
  return r;
}

interface Info {
  name: string;
  image: string;
  state: string;
  container: string | null;
  url: string;
  links: { app: string; var: string }[];
}
const info = async (name: string, reveal = false): Promise<Info> =>
  JSON.parse(await ok(['services:info', name, '--json', ...(reveal ? ['--reveal'] : [])])) as Info;

/** services:backup as bytes (a redis RDB is binary). */
async function backupOf(name: string): Promise<Buffer> {
  const r = await promisify(execFile)(join(REPO, 'bin', 'paas'), ['services:backup', name], {
    env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
  });
  return r.stdout;
}

/** services:restore with the dump on stdin. */
function restoreInto(name: string, dump: Buffer): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(join(REPO, 'bin', 'paas'), ['services:restore', name], {
      env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
    });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    c.stdin!.end(dump);
  });
}

/** A redeploy of the app's code (a new commit, a full build and deploy). */
async function redeploy(repo: ReturnType<typeof appRepo>, app: string, note: string) {
  repo.write('NOTE', `${note}\n`);
  repo.commit(note);
  const r = await push(p, repo.dir, app, { force: true });
  expect(r.code, r.stderr).toBe(0);
}

/** kill -9 of the daemon: the service keeps serving meanwhile and is adopted, not restarted. */
async function killDaemonAround(service: string, whileDown: () => Promise<void>) {
  const id = (await info(service)).container;
  p.kill9();
  await whileDown();
  await p.start();
  expect(await info(service)).toMatchObject({ state: 'running', container: id });
}

describe('postgres service', () => {
  const repo = appRepo('svc-node');

  it('creates a service and refuses bad input without changing anything', async () => {
    const created = await ok(['services:create', 'postgres', 'db']);
    expect(created).toContain('db is ready');
    const i = await info('db');
    expect(i).toMatchObject({ name: 'db', state: 'running', links: [] });
    expect(i.url).toMatch(
      /^postgres:\/\/postgres:\*{8}@localhost\/postgres\?host=\/run\/paas-services\/db$/,
    );
    expect((await info('db', true)).url).toMatch(/^postgres:\/\/postgres:[0-9a-f]{64}@/);

    const before = await ok(['services:list', '--json']);
    for (const [args, code, why] of [
      [['services:create', 'mysql', 'x'], 2, /unknown service type "mysql"/],
      [['services:create', 'postgres', 'Bad_Name'], 2, /service name "Bad_Name" is invalid/],
      [['services:create', 'postgres', 'db'], 5, /already exists/],
      [['services:link', 'db', 'no-such-app'], 3, /app "no-such-app" does not exist/],
      [['services:link', 'nope', 'x'], 3, /service "nope" does not exist/],
      [['services:link', 'db', 'x', '--alias', 'lower'], 2, /alias "lower" is invalid/],
      [['services:link', 'db', 'Bad_App'], 2, /app name "Bad_App"/],
      [['services:unlink', 'db', 'no-such-app'], 3, /app "no-such-app" does not exist/],
      [['services:info', 'Db'], 2, /service name "Db" is invalid/],
      [['services:destroy', 'nope', '--force'], 3, /service "nope" does not exist/],
    ] as const) {
      const r = await cli(p, [...args]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toMatch(why);
    }
    // The daemon refuses the same input from a client that skips the CLI's checks.
    for (const body of [
      { type: 'mysql', name: 'x' },
      { type: 'postgres', name: '../x' },
      { type: 'postgres', name: 'x', image: 'Not An Image' },
    ]) {
      const res = await fetch(`http://127.0.0.1:${p.apiPort}/api/services`, {
        method: 'POST',
        headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect(await ok(['services:list', '--json'])).toBe(before);
    expect(readdirSync(join(p.dataDir, 'services'))).toEqual(['db']);
    // The first start unpacks the image's layers and runs initdb: minutes on a busy box.
  }, 300_000);

  it('gives a linked Node app DATABASE_URL in a new release: pg creates a table and writes rows', async () => {
    const r = await push(p, repo.dir, 'shop');
    expect(r.code, r.stderr).toBe(0);
    expect(await ok(['services:link', 'db', 'shop'])).toContain(
      'linked db to shop (DATABASE_URL set); release v2 deployed',
    );
    for (const text of ['apple', 'pear'])
      expect(await send('POST', 'shop', `/notes?text=${text}`)).toEqual({
        status: 201,
        body: 'created\n',
      });
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
    expect((await info('db')).links).toEqual([
      expect.objectContaining({ app: 'shop', var: 'DATABASE_URL' }),
    ]);
  }, 600_000);

  it('is unreachable from an app that is not linked, even given the URL with the password', async () => {
    const r = await push(p, appRepo('svc-node').dir, 'nosy');
    expect(r.code, r.stderr).toBe(0);
    await ok(['config:set', 'nosy', `DATABASE_URL=${(await info('db', true)).url}`]);
    const probe = await get(p, 'nosy', '/notes');
    expect(probe.status).toBe(500);
    expect(probe.body).toMatch(
      /^ENOENT: connect ENOENT \/run\/paas-services\/db\/\.s\.PGSQL\.5432/,
    );
    // No network at all: nothing of the service listens on any interface of the host.
    const { createRuntime } = await import('../../src/runtime/index.ts');
    const c = await createRuntime('native', { dataDir: p.dataDir }).inspect(
      (await info('db')).container!,
    );
    expect(c.ip).toBeNull();
  }, 600_000);

  it('backs up while the app serves, and restores the rows after they were deleted', async () => {
    const loop = requestLoop(p, 'shop', '/notes', { minRequests: 20 });
    const dump = await cli(p, ['services:backup', 'db']);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('CREATE TABLE public.notes');
    await loop.end();
    expect(loop.failures).toEqual([]);
    expect(await send('DELETE', 'shop', '/notes')).toEqual({ status: 200, body: 'deleted\n' });
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: '' });
    await ok(['services:restore', 'db'], dump.stdout);
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
  });

  it('restores a backup into a new service: the linked app reads the same rows through its own URL', async () => {
    const dump = await backupOf('db');
    await ok(['services:create', 'postgres', 'db2']);
    expect(await restoreInto('db2', dump)).toMatchObject({ code: 0 });
    await ok(['services:link', 'db2', 'shop', '--alias', 'COPY']);
    expect(await get(p, 'shop', '/notes?via=COPY')).toEqual({ status: 200, body: 'apple\npear\n' });
    // Two services, not one: a row written to the copy stays there.
    expect((await send('POST', 'shop', '/notes?via=COPY&text=plum')).status).toBe(201);
    expect(await get(p, 'shop', '/notes?via=COPY')).toEqual({
      status: 200,
      body: 'apple\npear\nplum\n',
    });
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
    await ok(['services:unlink', 'db2', 'shop']);
    await ok(['services:destroy', 'db2', '--force']);
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
  }, 600_000);

  it('keeps the rows across a redeploy and a service restart', async () => {
    await redeploy(repo, 'shop', 'v-next');
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
    const id = (await info('db')).container;
    await ok(['services:restart', 'db']);
    const after = await info('db');
    expect(after.state).toBe('running');
    expect(after.container).not.toBe(id);
    // The pool's old connections died with the old container; the next query opens a new one.
    expect(await settled('shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\n' });
    expect((await send('POST', 'shop', '/notes?text=fig')).status).toBe(201);
    expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\nfig\n' });
  }, 600_000);

  it('keeps serving through a daemon kill -9, and is adopted, not restarted, after', async () => {
    await killDaemonAround('db', async () => {
      expect(await get(p, 'shop', '/notes')).toEqual({ status: 200, body: 'apple\npear\nfig\n' });
      expect((await send('POST', 'shop', '/notes?text=kiwi')).status).toBe(201);
    });
    expect(await get(p, 'shop', '/notes')).toEqual({
      status: 200,
      body: 'apple\npear\nfig\nkiwi\n',
    });
  });

  it('restarts a service whose container died, as app processes are', async () => {
    const id = (await info('db')).container!;
    const { createRuntime } = await import('../../src/runtime/index.ts');
    await createRuntime('native', { dataDir: p.dataDir }).kill(id, 'SIGKILL');
    const deadline = Date.now() + 60_000;
    let i = await info('db');
    while ((i.container === id || i.state !== 'running') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      i = await info('db');
    }
    expect(i.container).not.toBe(id);
    expect(await settled('shop', '/notes')).toEqual({
      status: 200,
      body: 'apple\npear\nfig\nkiwi\n',
    });
  });

  it('refuses to destroy a linked service; unlink, then destroy', async () => {
    const r = await cli(p, ['services:destroy', 'db', '--force']);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/linked to shop: services:unlink it first/);
    expect(await ok(['services:unlink', 'db', 'shop'])).toContain(
      'unlinked db from shop (DATABASE_URL unset)',
    );
    expect(await ok(['config', 'shop', '--json'])).not.toContain('DATABASE_URL');
    await ok(['services:destroy', 'db', '--force']);
    expect(JSON.parse(await ok(['services:list', '--json']))).toEqual([]);
  });
});

describe('redis service', () => {
  const repo = appRepo('svc-node');

  it('serves REDIS_URL to a linked Node app: ioredis sets and reads a key', async () => {
    await ok(['services:create', 'redis', 'cache']);
    expect((await info('cache')).url).toMatch(
      /^unix:\/\/\/run\/paas-services\/cache\/redis\.sock\?password=\*{8}$/,
    );
    const r = await push(p, repo.dir, 'counter');
    expect(r.code, r.stderr).toBe(0);
    expect(await ok(['services:link', 'cache', 'counter'])).toContain('REDIS_URL set');
    expect(await send('PUT', 'counter', '/keys/k?value=hello')).toEqual({
      status: 200,
      body: 'set\n',
    });
    expect(await get(p, 'counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });
  }, 600_000);

  it('keeps the key across a redeploy, a service restart and a daemon kill -9', async () => {
    await redeploy(repo, 'counter', 'v-next');
    expect(await get(p, 'counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });
    // Redis saves its RDB on SIGTERM: the restart's stop writes the key to the volume.
    await ok(['services:restart', 'cache']);
    expect(await settled('counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });
    await killDaemonAround('cache', async () => {
      expect(await get(p, 'counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });
    });
    expect(await get(p, 'counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });
  }, 600_000);

  it('backup, flush, restore round-trips the key; restored into a new service, the app reads it there', async () => {
    const dump = await backupOf('cache');
    expect(dump.subarray(0, 5).toString()).toBe('REDIS');
    expect(await send('DELETE', 'counter', '/keys')).toEqual({ status: 200, body: 'flushed\n' });
    expect(await get(p, 'counter', '/keys/k')).toEqual({ status: 200, body: '\n' });
    expect(await restoreInto('cache', dump)).toMatchObject({ code: 0 });
    expect(await settled('counter', '/keys/k')).toEqual({ status: 200, body: 'hello\n' });

    await ok(['services:create', 'redis', 'cache2']);
    expect(await restoreInto('cache2', dump)).toMatchObject({ code: 0 });
    await ok(['services:link', 'cache2', 'counter', '--alias', 'COPY']);
    expect(await settled('counter', '/keys/k?via=COPY')).toEqual({ status: 200, body: 'hello\n' });
  }, 600_000);
});

describe('services:create --image', () => {
  let reg: DockerRegistry;
  let host: string;

  /**
   * The official image as a registry serves it, from a stand-in (Docker Hub is out of reach):
   * our Debian-built image's layers, a docker-entrypoint.sh implementing the official
   * image's documented interface (test/fixtures/services), and the official config: that
   * ENTRYPOINT, the server as CMD, started as root.
   */
  async function pushStandIn(type: 'postgres' | 'redis', tag: string): Promise<void> {
    const store = await openStore(p.dataDir);
    const base = await store.resolveImage(`library/${type}:${tag}`);
    const layers: Buffer[] = [];
    for (const dir of (await store.layerDirs(base)).reverse()) layers.push(await tarLayer(dir));
    layers.push(
      makeTar([
        {
          path: 'usr/local/bin/docker-entrypoint.sh',
          mode: 0o755,
          body: readFileSync(join(REPO, 'test', 'fixtures', 'services', `${type}-entrypoint.sh`)),
        },
      ]),
    );
    const { User: _user, ...config } = base.config;
    await pushImage(`${host}/library/${type}:${tag}`, {
      layers,
      config: {
        ...config,
        Entrypoint: ['docker-entrypoint.sh'],
        Cmd: [type === 'postgres' ? 'postgres' : 'redis-server'],
        ...(type === 'redis' ? { WorkingDir: '/data' } : {}),
      },
    });
  }

  beforeAll(async () => {
    reg = await startDockerRegistry();
    host = `localhost:${reg.host.split(':')[1]}`;
    await pushStandIn('postgres', '15');
    await pushStandIn('redis', '7');
    // Its own app, so these tests also run alone (`-t '--image'`).
    const r = await push(p, appRepo('svc-node').dir, 'imgapp');
    expect(r.code, r.stderr).toBe(0);
  }, 900_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it('refuses a bad image reference or an image that is not there, changing nothing', async () => {
    const before = await ok(['services:list', '--json']);
    for (const [image, code, why] of [
      ['Not An Image', 2, /invalid image reference "Not An Image"/],
      [`${host}/library/postgres:14`, 3, /postgres:14/],
    ] as const) {
      const r = await cli(p, ['services:create', 'postgres', 'pgi', '--image', image]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toMatch(why);
    }
    expect(await ok(['services:list', '--json'])).toBe(before);
    expect(existsSync(join(p.dataDir, 'services', 'pgi'))).toBe(false);
  });

  it('pulls the official postgres image and runs it by its conventions: a linked app writes and reads rows', async () => {
    const out = await ok([
      'services:create',
      'postgres',
      'pgi',
      '--image',
      `${host}/library/postgres:15`,
    ]);
    expect(out).toContain('pgi is ready');
    expect(reg.requests('/v2/library/postgres/manifests/15')).toBeGreaterThan(0);
    const i = await info('pgi');
    expect(i).toMatchObject({ image: `${host}/library/postgres:15`, state: 'running' });
    await ok(['services:link', 'pgi', 'imgapp', '--alias', 'PGI']);
    expect((await send('POST', 'imgapp', '/notes?via=PGI&text=pulled')).status).toBe(201);
    expect(await get(p, 'imgapp', '/notes?via=PGI')).toEqual({ status: 200, body: 'pulled\n' });
    // Password auth on the socket too (POSTGRES_INITDB_ARGS): a wrong password is refused.
    await ok([
      'config:set',
      'imgapp',
      `BAD_URL=${(await info('pgi', true)).url.replace(/:[0-9a-f]{64}@/, ':wrong@')}`,
    ]);
    const bad = await get(p, 'imgapp', '/notes?via=BAD');
    expect(bad.status).toBe(500);
    expect(bad.body).toMatch(/password authentication failed for user "postgres"/);
    // The official image's server: a restart keeps the rows, a backup dumps them.
    await ok(['services:restart', 'pgi']);
    expect(await settled('imgapp', '/notes?via=PGI')).toEqual({ status: 200, body: 'pulled\n' });
    expect((await backupOf('pgi')).toString()).toContain('CREATE TABLE public.notes');
  }, 600_000);

  it('pulls the official redis image and runs it by its conventions: a linked app sets and reads a key', async () => {
    await ok(['services:create', 'redis', 'ri', '--image', `${host}/library/redis:7`]);
    await ok(['services:link', 'ri', 'imgapp', '--alias', 'RI']);
    expect((await send('PUT', 'imgapp', '/keys/k?via=RI&value=pulled')).status).toBe(200);
    expect(await get(p, 'imgapp', '/keys/k?via=RI')).toEqual({ status: 200, body: 'pulled\n' });
    await ok(['services:restart', 'ri']);
    expect(await settled('imgapp', '/keys/k?via=RI')).toEqual({
      status: 200,
      body: 'pulled\n',
    });
    // Back to back, right after the restart: each save lands in the same second as the one
    // before it (a backup once waited on LASTSAVE, whole seconds, and hung).
    expect((await backupOf('ri')).subarray(0, 5).toString()).toBe('REDIS');
    expect((await backupOf('ri')).subarray(0, 5).toString()).toBe('REDIS');
  }, 600_000);
});

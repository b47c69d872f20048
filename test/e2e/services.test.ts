// Backing services (issue 21) with real Postgres 15 and Redis 7 from Debian's packages, run
// as containers of our runtime. Linked apps read and write through DATABASE_URL / REDIS_URL
// with psql and redis-cli (the wire protocols); an app that is not linked cannot connect even
// with the password; backups restore the rows; a daemon kill -9 leaves the service serving.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/host.ts';
import { appRepo, cli, get, push, requestLoop, startPaas, type Paas } from './harness.ts';

let p: Paas;
beforeAll(async () => {
  p = await startPaas({
    // postgres:15 and redis:7 from provision/base-images (cached: an import of seconds).
    prepare: async (dataDir) => {
      await promisify(execFile)(
        join(REPO, 'provision', 'base-images'),
        ['--data-dir', dataDir, '--only', 'postgres,redis', '--quiet'],
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

interface Info {
  name: string;
  state: string;
  container: string | null;
  url: string;
  links: { app: string; var: string }[];
}
const info = async (name: string, reveal = false): Promise<Info> =>
  JSON.parse(await ok(['services:info', name, '--json', ...(reveal ? ['--reveal'] : [])])) as Info;

/** `paas run APP -- sh -c SCRIPT`: a one-off container of the app, with its config. */
const runIn = (app: string, script: string) =>
  cli(p, ['run', app, '--no-tty', '--', 'sh', '-c', script]);

describe('postgres service', () => {
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
    ] as const) {
      const r = await cli(p, [...args]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toMatch(why);
    }
    expect(await ok(['services:list', '--json'])).toBe(before);
    // The first start unpacks the image's layers and runs initdb: minutes on a busy box.
  }, 300_000);

  it('gives a linked app DATABASE_URL in a new release: it creates a table and reads its rows', async () => {
    const r = await push(p, appRepo('svc-pg-app').dir, 'shop');
    expect(r.code, r.stderr).toBe(0);
    expect(await ok(['services:link', 'db', 'shop'])).toContain(
      'linked db to shop (DATABASE_URL set); release v2 deployed',
    );
    const w = await runIn(
      'shop',
      `psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('apple'), ('pear')"`,
    );
    expect(w.code, w.stderr + w.stdout).toBe(0);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
    expect((await info('db')).links).toEqual([
      expect.objectContaining({ app: 'shop', var: 'DATABASE_URL' }),
    ]);
  });

  it('is unreachable from an app that is not linked, even with the password', async () => {
    const r = await push(p, appRepo('svc-pg-app').dir, 'nosy');
    expect(r.code, r.stderr).toBe(0);
    const url = (await info('db', true)).url;
    const probe = await runIn('nosy', `psql "${url}" -Atc 'SELECT 1'`);
    expect(probe.code).not.toBe(0);
    expect(probe.stdout + probe.stderr).toMatch(/No such file or directory|could not connect/);
    // No network at all: nothing of the service listens on any interface of the host.
    const { createRuntime } = await import('../../src/runtime/index.ts');
    const c = await createRuntime('native', { dataDir: p.dataDir }).inspect(
      (await info('db')).container!,
    );
    expect(c.ip).toBeNull();
  });

  it('backs up while the app serves, and restores the rows after they were deleted', async () => {
    const loop = requestLoop(p, 'shop', '/', { minRequests: 20 });
    const dump = await cli(p, ['services:backup', 'db']);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('CREATE TABLE public.t');
    const del = await runIn('shop', `psql "$DATABASE_URL" -c 'DELETE FROM t'`);
    expect(del.code, del.stderr).toBe(0);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: '' });
    await ok(['services:restore', 'db'], dump.stdout);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
    await loop.end();
    expect(loop.failures).toEqual([]);
  });

  it('restores a backup into a new service: the same rows, read through its own URL', async () => {
    const dump = await cli(p, ['services:backup', 'db']);
    expect(dump.code, dump.stderr).toBe(0);
    await ok(['services:create', 'postgres', 'db2']);
    await ok(['services:restore', 'db2'], dump.stdout);
    await ok(['services:link', 'db2', 'shop', '--alias', 'COPY']);
    const rows = await runIn('shop', `psql "$COPY_URL" -At -c 'SELECT v FROM t ORDER BY id'`);
    expect(rows.code, rows.stderr).toBe(0);
    expect(rows.stdout).toBe('apple\npear\n');
    await ok(['services:unlink', 'db2', 'shop']);
    await ok(['services:destroy', 'db2', '--force']);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
  });

  it('keeps the rows across a redeploy and a service restart', async () => {
    const repo = appRepo('svc-pg-app');
    repo.write('README', 'v3\n');
    repo.commit('redeploy');
    const r = await push(p, repo.dir, 'shop', { force: true });
    expect(r.code, r.stderr).toBe(0);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
    const id = (await info('db')).container;
    await ok(['services:restart', 'db']);
    const after = await info('db');
    expect(after.state).toBe('running');
    expect(after.container).not.toBe(id);
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
  });

  it('keeps serving through a daemon kill -9, and is adopted, not restarted, after', async () => {
    const id = (await info('db')).container;
    p.kill9();
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
    await p.start();
    const i = await info('db');
    expect(i).toMatchObject({ state: 'running', container: id });
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
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
    for (let n = 0; n < 100; n++) {
      if ((await get(p, 'shop')).status === 200) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(await get(p, 'shop')).toEqual({ status: 200, body: 'apple\npear\n' });
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
  it('serves REDIS_URL to a linked app; backup, flush, restore round-trips the key', async () => {
    await ok(['services:create', 'redis', 'cache']);
    const r = await push(p, appRepo('svc-redis-app').dir, 'counter');
    expect(r.code, r.stderr).toBe(0);
    expect(await ok(['services:link', 'cache', 'counter'])).toContain('REDIS_URL set');
    const cliArgs = `--no-auth-warning -s "$(echo "\${REDIS_URL#unix://}" | cut -d'?' -f1)" -a "\${REDIS_URL##*password=}"`;
    const set = await runIn('counter', `redis-cli ${cliArgs} SET k hello`);
    expect(set.code, set.stderr).toBe(0);
    expect(await get(p, 'counter')).toEqual({ status: 200, body: 'hello\n' });

    const dump = await promisify(execFile)(
      join(REPO, 'bin', 'paas'),
      ['services:backup', 'cache'],
      {
        env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    expect(dump.stdout.subarray(0, 5).toString()).toBe('REDIS');
    expect((await runIn('counter', `redis-cli ${cliArgs} FLUSHALL`)).code).toBe(0);
    expect(await get(p, 'counter')).toEqual({ status: 200, body: '\n' });

    const restore = await new Promise<number>((resolve) => {
      const c = execFile(join(REPO, 'bin', 'paas'), ['services:restore', 'cache'], {
        env: { ...process.env, PAAS_API: `http://127.0.0.1:${p.apiPort}`, PAAS_TOKEN: p.token },
      });
      c.on('close', (code) => resolve(code ?? -1));
      c.stdin!.end(dump.stdout);
    });
    expect(restore).toBe(0);
    expect(await get(p, 'counter')).toEqual({ status: 200, body: 'hello\n' });
  }, 300_000);
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openState, parseAppName } from '../apps/index.ts';
import { PaasError } from '../errors/index.ts';
import { KINDS, linkVolumes, parseAlias, parseServiceName, parseServiceType } from './index.ts';
import { ServiceStore } from './store.ts';

const dir = mkdtempSync(join(tmpdir(), 'paas-services-'));
const state = openState(dir);
afterAll(() => {
  state.close();
  rmSync(dir, { recursive: true, force: true });
});

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof PaasError ? `${e.code}/${e.status}` : String(e);
  }
  return 'accepted';
}

describe('services input', () => {
  it('takes postgres and redis, and names by the app-name rule', () => {
    expect(parseServiceType('postgres')).toBe('postgres');
    expect(parseServiceType('redis')).toBe('redis');
    for (const t of ['mysql', 'Postgres', '', null])
      expect(code(() => parseServiceType(t))).toBe('InvalidServiceName/400');
    expect(parseServiceName('db-1')).toBe('db-1');
    for (const n of ['Db', '1db', 'db-', 'a'.repeat(31), 'db.x', '../x', ''])
      expect(code(() => parseServiceName(n))).toBe('InvalidServiceName/400');
    expect(parseAlias('DATABASE')).toBe('DATABASE');
    for (const a of ['database', '1X', 'A-B', ''])
      expect(code(() => parseAlias(a))).toBe('InvalidArgument/400');
  });
});

describe('service links', () => {
  const app = parseAppName('shop');
  const other = parseAppName('other');
  const store = new ServiceStore(state.db);

  it('links a service once per app, mounts its socket dir read-only in that app only, and refuses destroy while linked', () => {
    state.apps.create(app);
    state.apps.create(other);
    const db = store.create(parseServiceName('db'), 'postgres', KINDS.postgres.image);
    expect(db.password).toMatch(/^[0-9a-f]{64}$/);
    expect(code(() => store.create(db.name, 'redis', KINDS.redis.image))).toBe('ServiceExists/409');
    store.link(db.name, app, parseAlias('DATABASE'));
    expect(code(() => store.link(db.name, app, parseAlias('OTHER')))).toBe('Conflict/409');
    expect(linkVolumes(state.db, dir, app)).toEqual([
      {
        source: join(dir, 'services', 'db', 'run'),
        target: '/run/paas-services/db',
        readonly: true,
      },
    ]);
    expect(linkVolumes(state.db, dir, other)).toEqual([]);
    expect(code(() => store.delete(db.name))).toBe('Conflict/409');
    // apps:destroy drops the app's links with it.
    state.apps.destroy(app);
    expect(store.links(db.name)).toEqual([]);
    store.delete(db.name);
    expect(store.list()).toEqual([]);
  });

  it('keeps the password out of the URL shape but in it for the link', () => {
    expect(KINDS.postgres.url('pw', '/run/paas-services/db')).toBe(
      'postgres://postgres:pw@localhost/postgres?host=/run/paas-services/db',
    );
    expect(KINDS.redis.url('pw', '/run/paas-services/c')).toBe(
      'unix:///run/paas-services/c/redis.sock?password=pw',
    );
  });
});

describe('the official images interface (--image)', () => {
  it('asks postgres for password auth on the socket and keeps the redis password off the command line', () => {
    const pg = KINDS.postgres.official;
    expect(pg.env('pw')).toMatchObject({
      POSTGRES_PASSWORD: 'pw',
      PGDATA: '/var/lib/postgresql/data',
      POSTGRES_INITDB_ARGS: expect.stringContaining('--auth-local=scram-sha-256'),
    });
    expect(pg.args).toContain('listen_addresses=');
    const redis = KINDS.redis.official;
    expect(redis.conf?.text('pw')).toContain('requirepass "pw"\n');
    expect(redis.args.join(' ')).not.toMatch(/requirepass|pw/);
    expect(redis.args).toEqual(['redis-server', `${redis.conf?.dir}/${redis.conf?.file}`]);
  });
});

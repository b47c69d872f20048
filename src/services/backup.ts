// services:backup and services:restore. Postgres: pg_dump inside the service's container
// (one snapshot transaction, so the dump is consistent while linked apps keep writing) and
// psql in one transaction to load it. Redis: BGSAVE (a fork writes the RDB while the server
// keeps serving), then the RDB file; a restore swaps the RDB in while the service is down.
import { chownSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgument, RuntimeError } from '../errors/index.ts';
import { KINDS } from './kinds.ts';
import type { ServiceManager } from './manager.ts';
import type { ServiceName } from './validate.ts';

const SAVE_TIMEOUT_MS = 10 * 60_000;
const RDB_MAGIC = Buffer.from('REDIS');

function failed(what: string, r: { exitCode: number; stderr: string; stdout: string }): never {
  throw new RuntimeError(
    `${what} exited with ${r.exitCode}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`,
    { exitCode: r.exitCode },
  );
}

async function redisCli(m: ServiceManager, name: ServiceName, args: string[]): Promise<string> {
  const svc = m.services.get(name);
  const r = await m.exec(name, [
    'redis-cli',
    '--no-auth-warning',
    '-s',
    '/run/redis/redis.sock',
    '-a',
    svc.password,
    ...args,
  ]);
  if (r.exitCode !== 0) failed(`redis-cli ${args[0]}`, r);
  return r.stdout;
}

export async function backup(m: ServiceManager, name: ServiceName): Promise<Buffer> {
  const svc = m.services.get(name);
  if (svc.type === 'postgres') {
    const r = await m.exec(name, KINDS.postgres.dump(svc.password));
    if (r.exitCode !== 0) failed('pg_dump', r);
    return Buffer.from(r.stdout);
  }
  // Saves counted by redis (INFO's rdb_saves), not LASTSAVE: that is in whole seconds, so a
  // BGSAVE finishing in the second of the previous save (a backup right after a restart or
  // another backup) never moved it and the backup waited out its bound.
  const saves = (info: string) => Number(/^rdb_saves:(\d+)/m.exec(info)?.[1] ?? NaN);
  const before = saves(await redisCli(m, name, ['INFO', 'persistence']));
  if (Number.isNaN(before))
    throw new RuntimeError(`redis of "${name}" reports no rdb_saves (redis 7 or later is needed)`, {
      service: name,
    });
  await redisCli(m, name, ['BGSAVE']);
  // Done when a save more has finished and none is running (bounded).
  const deadline = Date.now() + SAVE_TIMEOUT_MS;
  for (;;) {
    const info = await redisCli(m, name, ['INFO', 'persistence']);
    if (/rdb_bgsave_in_progress:0/.test(info) && saves(info) > before) {
      if (!/rdb_last_bgsave_status:ok/.test(info))
        throw new RuntimeError(`redis BGSAVE of "${name}" failed`, { service: name });
      break;
    }
    if (Date.now() > deadline)
      throw new RuntimeError(`redis BGSAVE of "${name}" did not finish`, { service: name });
    await sleep(200);
  }
  return readFileSync(join(m.hostDirs(name).data, 'dump.rdb'));
}

export async function restore(m: ServiceManager, name: ServiceName, dump: Buffer): Promise<void> {
  const svc = m.services.get(name);
  if (svc.type === 'postgres') {
    const r = await m.exec(name, KINDS.postgres.load(svc.password), dump);
    if (r.exitCode !== 0) failed('psql (restore)', r);
    return;
  }
  if (dump.length < RDB_MAGIC.length || !dump.subarray(0, 5).equals(RDB_MAGIC))
    throw new InvalidArgument('a redis restore takes an RDB file (services:backup of redis)');
  // Redis saves on SIGTERM, so the file goes in after it stopped; rename: never half a file.
  const data = m.hostDirs(name).data;
  await m.restart(name, async () => {
    const tmp = join(data, 'dump.rdb.restore');
    writeFileSync(tmp, dump, { mode: 0o600 });
    const { uid, gid } = statSync(data);
    chownSync(tmp, uid, gid);
    renameSync(tmp, join(data, 'dump.rdb'));
  });
}

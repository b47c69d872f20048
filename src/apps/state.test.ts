import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  openState,
  parseAppName,
  parseConfigKey,
  parseConfigPairs,
  parseDomain,
  parseVersion,
  AppStore,
  type State,
} from './index.ts';
import { PaasError } from '../errors/index.ts';

let dir: string;
let s: State;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'paas-state-'));
  s = openState(dir);
});
afterEach(() => {
  s.close();
  rmSync(dir, { recursive: true, force: true });
});

const app = parseAppName('shop');
const rel = (sha: string) => ({
  image: `shop:${sha}`,
  imageDigest: `sha256:${sha}`,
  processes: { web: ['httpd'] },
  gitSha: sha,
  buildId: null,
  description: `deploy ${sha}`,
});

describe('apps', () => {
  it('creates, lists, refuses duplicates and keeps a tombstone on destroy', () => {
    s.apps.create(app);
    expect(() => s.apps.create(app)).toThrow(/already exists/);
    expect(s.apps.list().map((a) => a.name)).toEqual(['shop']);
    s.apps.destroy(app);
    expect(s.apps.list()).toEqual([]);
    expect(() => s.apps.get(app)).toThrow(/does not exist/);
    // A push to a destroyed app is refused; an explicit create brings the name back.
    expect(() => s.apps.ensureForPush(app)).toThrow(/was destroyed/);
    s.apps.create(app);
    expect(s.apps.ensureForPush(app).created).toBe(false);
    expect(s.apps.ensureForPush(parseAppName('fresh')).created).toBe(true);
  });

  it('survives reopening the database (migrations run once)', () => {
    s.apps.create(app);
    s.close();
    s = openState(dir);
    expect(s.apps.get(app).name).toBe('shop');
  });
});

describe('releases', () => {
  it('numbers releases, snapshots config with each and never rewrites an old one', () => {
    s.apps.create(app);
    const v1 = s.releases.create(app, rel('aaa'), {});
    const cfg = AppStore.applyConfig(s.apps.config(app), parseConfigPairs({ GREETING: 'hi' }), []);
    const v2 = s.releases.create(app, { ...rel('aaa'), description: 'set GREETING' }, cfg);
    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect(s.apps.config(app)).toEqual({ GREETING: 'hi' });
    expect(s.releases.get(app, 1).config).toEqual({});
    // A rollback is a new release carrying v1's config, which becomes the app's config again.
    const v3 = s.releases.create(app, { ...rel('aaa'), description: 'rollback to v1' }, v1.config);
    expect(v3.version).toBe(3);
    expect(s.apps.config(app)).toEqual({});
    expect(s.releases.list(app).map((r) => r.version)).toEqual([3, 2, 1]);
  });

  it('tracks deploy outcomes apart from the release and recovers interrupted ones', () => {
    s.apps.create(app);
    const v1 = s.releases.create(app, rel('aaa'), {});
    s.releases.markDeploying(app, v1.version);
    s.releases.finishDeploy(app, v1.version, { ok: true });
    expect(s.apps.get(app).liveRelease).toBe(1);
    const v2 = s.releases.create(app, rel('bbb'), {});
    s.releases.markDeploying(app, v2.version);
    expect(s.releases.failInterrupted()).toBe(1);
    expect(s.releases.get(app, 2).deploy?.status).toBe('failed');
    expect(s.apps.get(app).liveRelease).toBe(1);
  });

  it('records what built each release; releases from before it was recorded read as null', () => {
    s.apps.create(app);
    expect(s.releases.create(app, { ...rel('aaa'), buildpack: 'node' }, {}).buildpack).toBe('node');
    expect(s.releases.create(app, { ...rel('bbb'), buildpack: 'dockerfile' }, {}).buildpack).toBe(
      'dockerfile',
    );
    expect(s.releases.create(app, rel('ccc'), {}).buildpack).toBeNull();
    expect(s.releases.list(app).map((r) => r.buildpack)).toEqual([null, 'dockerfile', 'node']);
    // A database from before the buildpack column: the migration adds it, old rows stay null.
    s.close();
    const db = new DatabaseSync(join(dir, 'paas.db'));
    db.exec(
      'ALTER TABLE releases DROP COLUMN buildpack; DELETE FROM migrations WHERE version = 2;',
    );
    db.close();
    s = openState(dir);
    expect(s.releases.list(app).map((r) => [r.version, r.buildpack])).toEqual([
      [3, null],
      [2, null],
      [1, null],
    ]);
    expect(s.releases.create(app, { ...rel('ddd'), buildpack: 'static' }, {}).buildpack).toBe(
      'static',
    );
  });

  it('parses versions', () => {
    expect(parseVersion('v12')).toBe(12);
    expect(parseVersion('3')).toBe(3);
    expect(() => parseVersion('v0')).toThrow(PaasError);
    expect(() => parseVersion('latest')).toThrow(/not a release/);
  });
});

describe('builds', () => {
  it('marks builds that were running when the daemon died as failed', () => {
    s.apps.create(app);
    const b = s.builds.start(app, 'abc');
    const done = s.builds.start(app, 'def');
    s.builds.succeed(done.id, 'shop:v1');
    const failed = s.builds.failInterrupted();
    expect(failed.map((x) => x.id)).toEqual([b.id]);
    expect(s.builds.get(b.id)?.status).toBe('failed');
    expect(s.builds.get(done.id)?.status).toBe('succeeded');
  });
});

describe('locks', () => {
  it('serializes one app and lets other apps run in parallel', async () => {
    const order: string[] = [];
    const u1 = await s.locks.acquire(app, 'push 1');
    let waitedOn = '';
    const p2 = s.locks.acquire(app, 'push 2', { onWait: (h) => (waitedOn = h) }).then((u) => {
      order.push('push 2');
      return u;
    });
    const other = await s.locks.acquire(parseAppName('other'), 'push 3');
    order.push('other');
    await new Promise((r) => setTimeout(r, 20));
    order.push('push 1 done');
    u1();
    u1(); // idempotent
    (await p2)();
    other();
    expect(order).toEqual(['other', 'push 1 done', 'push 2']);
    expect(waitedOn).toBe('push 1');
    expect(s.locks.holder(app)).toBeNull();
  });

  it('times out a waiter without wedging the queue', async () => {
    const u1 = await s.locks.acquire(app, 'a');
    await expect(s.locks.acquire(app, 'b', { timeoutMs: 20 })).rejects.toThrow(/busy/);
    const p3 = s.locks.acquire(app, 'c');
    u1();
    (await p3)();
  });

  it('frees locks left by a previous boot', async () => {
    await s.locks.acquire(app, 'crashed push');
    s.close();
    s = openState(dir);
    expect(s.locks.holder(app)?.holder).toBe('crashed push');
    expect(s.locks.freeStale()).toEqual(['shop']);
    expect(s.locks.holder(app)).toBeNull();
  });
});

describe('process slots', () => {
  const web1 = { app, type: 'web', n: 1, version: 2 };

  it("keep a slot's restarts, crash streak and last exit across a reopen, found by its container", () => {
    s.slots.start(web1, 'c1');
    s.slots.crashed('c1', 1, 'exited with code 3');
    s.slots.restarted('c1', 'c2', 1);
    s.slots.crashed('c2', 2, 'was killed by SIGKILL');
    s.slots.restarted('c2', 'c3', 2);
    s.close();
    s = openState(dir);
    // The daemon adopts c3, still running: the same history.
    expect(s.slots.resume(web1, 'c3')).toEqual({
      restarts: 2,
      crashes: 2,
      lastExit: 'was killed by SIGKILL',
    });
    expect(s.slots.get('c2')).toBeNull();
  });

  it("carry a gone container's history to the one that refills its slot, as one more restart", () => {
    s.slots.start(web1, 'c1');
    s.slots.crashed('c1', 3, 'exited with code 3');
    expect(s.slots.resume(web1, 'c2')).toEqual({
      restarts: 1,
      crashes: 3,
      lastExit: 'exited with code 3',
    });
    expect(s.slots.get('c2')).toMatchObject({ type: 'web', n: 1, version: 2, restarts: 1 });
    // Another release's slot, or another n, starts with none.
    expect(s.slots.resume({ ...web1, version: 3 }, 'c3')).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
    });
    expect(s.slots.resume({ ...web1, n: 2 }, 'c4')).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
    });
  });

  it('start fresh on a deploy or restart while the old process keeps its own row until it is retired', () => {
    s.slots.start(web1, 'old');
    s.slots.restarted('old', 'old2', 4);
    // ps:restart: the same slot of the same release, side by side with the old process.
    expect(s.slots.start(web1, 'new')).toEqual({ restarts: 0, crashes: 0, lastExit: null });
    s.slots.crashed('old2', 1, 'exited with code 1');
    expect(s.slots.get('old2')).toMatchObject({ restarts: 4, crashes: 1 });
    expect(s.slots.get('new')).toMatchObject({ restarts: 0, crashes: 0, lastExit: null });
    s.slots.forget('old2');
    expect(s.slots.get('old2')).toBeNull();
    // Scaled away: the row goes, and the slot refilled later starts with none.
    s.slots.forget('new');
    expect(s.slots.resume(web1, 'later')).toEqual({ restarts: 0, crashes: 0, lastExit: null });
  });

  it('drop the rows of containers no process runs in at daemon start', () => {
    s.slots.start(web1, 'live');
    s.slots.start({ ...web1, n: 2 }, 'stray');
    expect(s.slots.keepOnly(new Set(['live']))).toBe(1);
    expect(s.slots.get('live')).not.toBeNull();
    expect(s.slots.resume({ ...web1, n: 2 }, 'next')).toEqual({
      restarts: 0,
      crashes: 0,
      lastExit: null,
    });
  });
});

describe('validators', () => {
  it('rejects bad config keys, values and domains', () => {
    expect(parseConfigKey('DATABASE_URL')).toBe('DATABASE_URL');
    for (const bad of ['1ABC', 'A-B', 'A B', '', 'A=B'])
      expect(() => parseConfigKey(bad)).toThrow(/config key/);
    expect(() => parseConfigPairs({ OK: 'x', 'BAD-KEY': 'y' })).toThrow(/BAD-KEY/);
    expect(() => parseConfigPairs({ K: 'a\0b' })).toThrow(/NUL/);
    expect(parseDomain('WWW.Example.com.')).toBe('www.example.com');
    expect(() => parseDomain('-bad.com')).toThrow(/not a valid/);
  });

  it('accepts wildcard domains, the rule the router serves (issue 16: the API refused them)', () => {
    expect(parseDomain('*.Example.com')).toBe('*.example.com');
    expect(parseDomain('*.eu.example.com.')).toBe('*.eu.example.com');
    // A wildcard covers names below a registrable-looking name, never a whole TLD or label soup.
    for (const bad of ['*.com', '*', '*.', 'a.*.example.com', '**.example.com', '*example.com'])
      expect(() => parseDomain(bad), bad).toThrow(/not a valid host name/);
  });
});

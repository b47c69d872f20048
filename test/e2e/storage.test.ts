// Persistent storage (issue 21): a named volume is the app's, not the release's. The app
// writes to it at every start; a redeploy, a rollback and a restart keep what it wrote, a
// second app mounting the same name gets its own, and host paths that reach the system or
// paas's own state are refused with InvalidMount.
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRepo, cli, get, push, startPaas, type Paas } from './harness.ts';

let p: Paas;
const hostDir = mkdtempSync(join(tmpdir(), 'paas-hostdir-'));
beforeAll(async () => {
  p = await startPaas();
});
afterAll(async () => {
  await p?.cleanup();
  rmSync(hostDir, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<string> {
  const r = await cli(p, args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

async function boots(app: string): Promise<string[]> {
  const r = await get(p, app, '/boots.txt');
  expect(r.status).toBe(200);
  return r.body.trim().split('\n');
}

describe('storage:mount', () => {
  it('keeps what the app wrote to its volume across a redeploy, a rollback and a restart', async () => {
    await ok(['apps:create', 'keeper']);
    expect(await ok(['storage:mount', 'keeper', 'data:/data'])).toContain(
      'mounted data on /data of keeper',
    );
    const repo = appRepo('storage-web');
    const first = await push(p, repo.dir, 'keeper');
    expect(first.code, first.stderr).toBe(0);
    // The fresh volume became the image USER's (app, 1000) on first use.
    const vol = join(p.dataDir, 'volumes', 'keeper', 'data');
    expect(statSync(vol).uid).toBe(1000);
    expect(await boots('keeper')).toEqual(['v1 1000']);

    repo.write('www/index.html', 'storage app, second version\n');
    repo.commit('v2');
    const second = await push(p, repo.dir, 'keeper');
    expect(second.code, second.stderr).toBe(0);
    expect(await boots('keeper')).toEqual(['v1 1000', 'v2 1000']);

    await ok(['rollback', 'keeper', 'v1']);
    expect(await boots('keeper')).toEqual(['v1 1000', 'v2 1000', 'v3 1000']);

    await ok(['ps:restart', 'keeper']);
    expect(await boots('keeper')).toEqual(['v1 1000', 'v2 1000', 'v3 1000', 'v3 1000']);

    const list = JSON.parse(await ok(['storage:list', 'keeper', '--json'])) as unknown[];
    expect(list).toEqual([
      expect.objectContaining({ kind: 'volume', source: 'data', target: '/data', hostPath: vol }),
    ]);
  });

  it('binds an operator host directory from the next restart, and says so', async () => {
    // An operator's directory keeps its owner and mode: readable by the app's user here.
    chmodSync(hostDir, 0o755);
    writeFileSync(join(hostDir, 'hello'), 'from the host\n', { mode: 0o644 });
    const out = await ok(['storage:mount', 'keeper', `${hostDir}:/host`]);
    expect(out).toContain(`mounted ${hostDir} on /host of keeper`);
    expect(out).toContain('until restarted: paas ps:restart keeper');
    expect((await get(p, 'keeper', '/host.txt')).status).toBe(404);
    await ok(['ps:restart', 'keeper']);
    expect(await get(p, 'keeper', '/host.txt')).toEqual({ status: 200, body: 'from the host\n' });
    expect((await boots('keeper')).length).toBe(5);
  });

  it("gives a second app its own volume of the same name: it never sees the first app's", async () => {
    await ok(['apps:create', 'stranger']);
    await ok(['storage:mount', 'stranger', 'data:/data']);
    const r = await push(p, appRepo('storage-web').dir, 'stranger');
    expect(r.code, r.stderr).toBe(0);
    expect(await boots('stranger')).toEqual(['v1 1000']);
    expect(await boots('keeper')).toHaveLength(5);
  });

  it.each([
    ['/etc:/x', /inside \/etc/],
    ['/:/x', /the host root/],
    ['/var/lib:/x', /contains \/var\/lib\/paas/],
    ['DATADIR:/x', /inside/],
    ['DATADIR/volumes/keeper/data:/x', /inside/],
    ['data:/proc/x', /inside \/proc/],
    ['data:/', /over the container's "\/"/],
    ['Bad Name:/x', /volume name/],
  ])('refuses %s with InvalidMount and changes nothing', async (raw, why) => {
    const before = await ok(['storage:list', 'stranger', '--json']);
    const r = await cli(p, ['storage:mount', 'stranger', raw.replace('DATADIR', p.dataDir)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(why);
    expect(await ok(['storage:list', 'stranger', '--json'])).toBe(before);
  });

  it('unmounts; apps:destroy keeps named volumes unless --purge-storage', async () => {
    expect(await ok(['storage:unmount', 'keeper', '/host'])).toContain(
      `unmounted ${hostDir} from /host of keeper`,
    );
    expect((await cli(p, ['storage:unmount', 'keeper', '/host'])).code).toBe(3);
    await ok(['apps:destroy', 'stranger', '--force']);
    expect(existsSync(join(p.dataDir, 'volumes', 'stranger', 'data', 'boots'))).toBe(true);
    await ok(['apps:destroy', 'keeper', '--force', '--purge-storage']);
    expect(existsSync(join(p.dataDir, 'volumes', 'keeper'))).toBe(false);
    // A revived name starts without mounts, but mounting the volume again brings its data back.
    await ok(['apps:create', 'stranger']);
    expect(JSON.parse(await ok(['storage:list', 'stranger', '--json']))).toEqual([]);
    await ok(['storage:mount', 'stranger', 'data:/data']);
    const r = await push(p, appRepo('storage-web').dir, 'stranger');
    expect(r.code, r.stderr).toBe(0);
    expect(await boots('stranger')).toEqual(['v1 1000', 'v1 1000']);
  });
});

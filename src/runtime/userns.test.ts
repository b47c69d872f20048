// The optional user namespace (native/SPEC.md `userns`): the container's root is host uid
// 100000, the shared image layers keep their host owners on disk and still look right
// inside (idmapped mounts), what the container writes belongs to the shifted host ids, and
// the escape checks still fail.
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  mountsUnder,
  NATIVE_DIR,
  PROBE,
  tempDir,
  testRootfs,
} from '../../test/helpers/host.ts';
import { PaasError } from '../errors/index.ts';
import { createRuntime } from './index.ts';
import type { ContainerSpec, ProcessResult, Runtime } from './types.ts';

const USERNS = { hostUid: 100000, hostGid: 100000, count: 65536 };
const CHECKS = [
  'mount',
  'umount',
  'pivot_root',
  'mknod',
  'init_module',
  'kexec_load',
  'reboot',
  'swapon',
  'sethostname',
  'write-proc-sys',
  'read-kcore',
  'open-proc1-exe-write',
] as const;
/** A line of /proc/self/uid_map, spaces squeezed. */
const MAP = '0 100000 65536';
const squeeze = (l: string): string => l.trim().split(/\s+/).join(' ');

describe('user namespace on native', () => {
  const tmp = tempDir('userns');
  const dataDir = join(tmp.dir, 'data');
  const cgroupParent = 'paastest-userns';
  const probeDir = join(tmp.dir, 'probe');
  const vol = join(tmp.dir, 'vol');
  let rt: Runtime;
  let rootfs: string;
  let n = 0;

  /** A writable layer of our own, so its contents can be checked after the container is gone. */
  function layer(): { upper: string; work: string } {
    const d = join(tmp.dir, `layer-${n++}`);
    mkdirSync(join(d, 'upper'), { recursive: true });
    mkdirSync(join(d, 'work'));
    return { upper: join(d, 'upper'), work: join(d, 'work') };
  }

  const run = (s: Partial<ContainerSpec>): Promise<ProcessResult> =>
    rt.run(
      { rootfs: { lowers: [rootfs], ...layer() }, command: ['true'], userns: USERNS, ...s },
      { stdio: 'pipe' },
    );

  beforeAll(() => {
    rootfs = testRootfs();
    rt = createRuntime('native', { dataDir, nativeDir: NATIVE_DIR, cgroupParent });
    mkdirSync(probeDir);
    writeFileSync(join(probeDir, 'escape-probe'), readFileSync(PROBE), { mode: 0o755 });
    // A volume the container's users may write to: owned by the container's root on the
    // host, sticky and world-writable so `app` can create files too.
    mkdirSync(vol);
    chownSync(vol, USERNS.hostUid, USERNS.hostGid);
    chmodSync(vol, 0o1777);
  });
  afterAll(() => tmp.cleanup());

  it('runs as root inside, host uid 100000 outside, with the mapping in /proc/self/uid_map', async () => {
    const r = await run({
      command: ['sh', '-c', 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map'],
    });
    expect(r.exitCode).toBe(0);
    const [uid, gid, ...maps] = r.stdout.trim().split('\n');
    expect([uid, gid]).toEqual(['0', '0']);
    expect(maps.map(squeeze)).toEqual([MAP, MAP]);
  });

  it('shows image files with their owners as extracted, without changing them on disk', async () => {
    const r = await run({
      command: ['sh', '-c', 'stat -c %u:%g /bin/busybox /home/app /; cat /proc/self/uid_map'],
    });
    expect(r.stdout.trim().split('\n').map(squeeze)).toEqual(['0:0', '1000:1000', '0:0', MAP]);
    expect(statSync(join(rootfs, 'bin', 'busybox')).uid).toBe(0);
    expect(statSync(join(rootfs, 'home', 'app')).uid).toBe(1000);
  });

  it('stores what root and app write in a volume as host 100000 and 101000', async () => {
    const root = await run({
      command: ['touch', '/data/by-root'],
      volumes: [{ source: vol, target: '/data' }],
    });
    const app = await run({
      command: ['touch', '/data/by-app'],
      user: 'app',
      volumes: [{ source: vol, target: '/data' }],
    });
    expect([root.exitCode, app.exitCode]).toEqual([0, 0]);
    expect(statSync(join(vol, 'by-root'))).toMatchObject({ uid: 100000, gid: 100000 });
    expect(statSync(join(vol, 'by-app'))).toMatchObject({ uid: 101000, gid: 101000 });
  });

  it('writes into the image by copy-up into the writable layer, owned by the shifted uid', async () => {
    const w = layer();
    const r = await rt.run(
      {
        rootfs: { lowers: [rootfs], ...w },
        userns: USERNS,
        command: ['sh', '-c', 'echo added >> /etc/passwd && mkdir /made && tail -1 /etc/passwd'],
      },
      { stdio: 'pipe' },
    );
    expect(r.stdout.trim()).toBe('added');
    expect(statSync(join(w.upper, 'etc', 'passwd'))).toMatchObject({ uid: 100000, gid: 100000 });
    expect(statSync(join(w.upper, 'made')).uid).toBe(100000);
    expect(statSync(w.upper).uid).toBe(100000);
    expect(readFileSync(join(rootfs, 'etc', 'passwd'), 'utf8')).not.toContain('added');
  });

  it.each(CHECKS)('still blocks %s', async (check) => {
    const r = await run({
      command: ['sh', '-c', `/probe/escape-probe ${check} && cat /proc/self/uid_map`],
      volumes: [{ source: probeDir, target: '/probe', readonly: true }],
    });
    const [verdict, map] = r.stdout.trim().split('\n');
    expect(verdict).toMatch(new RegExp(`^BLOCKED ${check} `));
    expect(squeeze(map ?? '')).toBe(MAP);
    expect(r.exitCode).toBe(0);
  });

  it('execs into a running container as the mapped users', async () => {
    const c = await rt.create({
      rootfs: { lowers: [rootfs] },
      command: ['sleep', '30'],
      userns: USERNS,
      volumes: [{ source: vol, target: '/data' }],
    });
    try {
      await rt.start(c.id);
      const root = await rt.exec(c.id, {
        command: ['sh', '-c', 'id -u; cat /proc/self/uid_map; touch /data/exec-root'],
      });
      expect(root.exitCode).toBe(0);
      expect(root.stdout.trim().split('\n').map(squeeze)).toEqual(['0', MAP]);
      const app = await rt.exec(c.id, {
        command: ['sh', '-c', 'id -u; touch /data/exec-app'],
        user: 'app',
      });
      expect(app.stdout.trim()).toBe('1000');
      expect(statSync(join(vol, 'exec-root')).uid).toBe(100000);
      expect(statSync(join(vol, 'exec-app')).uid).toBe(101000);
      // The init itself, seen from the host, is the container's root: host uid 100000.
      const info = await rt.inspect(c.id);
      expect(readFileSync(`/proc/${info.pid}/status`, 'utf8')).toMatch(
        /^Uid:\s+100000\s+100000\s+100000\s+100000$/m,
      );
    } finally {
      await rt.remove(c.id, { force: true });
    }
  });

  function expectClean(): void {
    expect(mountsUnder(tmp.dir)).toEqual([]);
    expect(cgroupDirs(cgroupParent)).toEqual([]);
    const containers = join(dataDir, 'containers');
    expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
  }

  const bad: [string, () => Partial<ContainerSpec>, RegExp][] = [
    [
      'count 0',
      () => ({ userns: { ...USERNS, count: 0 } }),
      /^userns\.count: 0 must be an integer from 1/,
    ],
    [
      'host uid 0 (container root = host root)',
      () => ({ userns: { ...USERNS, hostUid: 0 } }),
      /^userns\.hostUid: 0 must be an integer from 1/,
    ],
    ['host gid 0', () => ({ userns: { ...USERNS, hostGid: 0 } }), /^userns\.hostGid: /],
    [
      'a range past 2^32-1',
      () => ({ userns: { ...USERNS, hostUid: 4294967000 } }),
      /^userns\.count: hostUid 4294967000 \+ count 65536 passes/,
    ],
    [
      'garbage: a string',
      () => ({ userns: { ...USERNS, hostUid: '100000' as unknown as number } }),
      /^userns\.hostUid: "100000" must be an integer/,
    ],
    ['garbage: a fraction', () => ({ userns: { ...USERNS, count: 1.5 } }), /^userns\.count: /],
    [
      'garbage: not an object',
      () => ({ userns: 'yes' as unknown as typeof USERNS }),
      /^userns: must be \{ hostUid, hostGid, count \}/,
    ],
    [
      'a writable rootfs directory',
      () => ({ rootfs: { dir: rootfs } }),
      /^userns: a writable rootfs directory is not supported/,
    ],
    [
      'a user outside the mapping',
      () => ({ userns: { ...USERNS, count: 100 }, user: 'app' }),
      /^user: id 1000 is outside userns \(count 100\)/,
    ],
  ];

  it.each(bad)('refuses %s, naming the field, leaving nothing', async (_label, make, message) => {
    const spec: ContainerSpec = {
      rootfs: { lowers: [rootfs] },
      command: ['true'],
      userns: USERNS,
      ...make(),
    };
    const err = await rt.create(spec).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PaasError);
    expect((err as PaasError).code).toBe('InvalidSpec');
    expect((err as PaasError).message).toMatch(message);
    expectClean();
  });

  it('is refused by the runc backend as unsupported, leaving nothing', async () => {
    const runc = createRuntime('runc', { dataDir, nativeDir: NATIVE_DIR, cgroupParent });
    const err = await runc
      .create({ rootfs: { lowers: [rootfs] }, command: ['true'], userns: USERNS })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect((err as PaasError).code).toBe('Unsupported');
    expect((err as PaasError).message).toMatch(/userns is not supported by the runc backend/);
    expectClean();
  });
});

// Container start→exit of /bin/true in the same busybox rootfs: the native launcher vs runc
// and `docker run --rm` on a private dockerd (the rootfs `docker import`ed), with the same
// policy (namespaces, caps, seccomp, masked paths; no network but loopback, our default).
// When no dockerd can start, docker's figure is MEASURED.md's, labelled. Also the shim's RSS
// per running container.
// Goals: native ≤ 0.5x runc; shim RSS ≤ 1 MB.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRuntime } from '../src/runtime/index.ts';
import { docker, hyperfine, table, withDockerd, type Dockerd, type Timing } from './lib.ts';

const repo = join(import.meta.dirname, '..');
const rootfs = execFileSync(join(repo, 'provision/test-rootfs'), { encoding: 'utf8' }).trim();
const dataDir = mkdtempSync(join(tmpdir(), 'paas-bench-rt-'));
const opts = { dataDir, cgroupParent: 'paasbench' };
const native = createRuntime('native', opts);
const runc = createRuntime('runc', opts);
const shim = join(repo, 'native/build/paas-shim');

const n = await native.create({ rootfs: { dir: rootfs }, command: ['/bin/true'] });
const r = await runc.create({ rootfs: { dir: rootfs }, command: ['/bin/true'] });
const nb = join(dataDir, 'containers', n.id);
const rb = join(dataDir, 'containers', r.id);
execFileSync('mount', ['--bind', rootfs, join(rb, 'rootfs')]);
const commands: Record<string, string> = {
  'native (paas-shim run)': `${shim} run ${nb}`,
  'runc run': `runc --root ${join(dataDir, 'runc')} run --bundle ${rb} ${r.id}`,
  'paas container:run (incl. Node start)': `${join(repo, 'bin/paas')} container:run --data-dir ${dataDir} --rootfs ${rootfs} -- /bin/true`,
};
let timings;
try {
  timings = hyperfine(commands, { runs: 40, warmup: 5 });
} finally {
  execFileSync('umount', [join(rb, 'rootfs')]);
}

/** `docker run --rm` of the same /bin/true, the rootfs imported as an image (no Docker Hub here). */
async function dockerRun(d: Dockerd): Promise<Timing[]> {
  const tar = join(dataDir, 'rootfs.tar');
  execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
  await docker(d, ['import', tar, 'paas-bench/busybox']);
  const cmd = `${d.client.bin} run --rm --network none paas-bench/busybox /bin/true`;
  return hyperfine({ 'docker run --rm': cmd }, { runs: 15, warmup: 3, env: d.client.env });
}
const dockerTimings = await withDockerd((d) => (d === null ? Promise.resolve(null) : dockerRun(d)));
if (dockerTimings !== null) timings.push(...dockerTimings);

// Shim memory: one detached container, its shim's resident set.
const live = await native.create({ rootfs: { dir: rootfs }, command: ['sleep', '30'] });
await native.start(live.id);
await sleep(300);
const state = JSON.parse(readFileSync(join(dataDir, 'containers', live.id, 'state'), 'utf8')) as {
  shimPid: number;
};
const rssKb = Number(
  /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${state.shimPid}/status`, 'utf8'))?.[1] ?? 0,
);
for (const c of [n.id, r.id, live.id])
  await (c === r.id ? runc : native).remove(c, { force: true });
rmSync(dataDir, { recursive: true, force: true });

const runcMs = timings.find((t) => t.name === 'runc run')?.meanMs ?? Number.NaN;
// MEASURED.md's ~360 ms only when no engine ran here, and the header says so.
const dockerMs = dockerTimings?.[0]?.meanMs ?? 360;
console.log(
  table([
    [
      'start→exit of /bin/true',
      'mean ms',
      '± ms',
      'vs runc',
      dockerTimings === null ? 'vs docker run (MEASURED.md)' : 'vs docker run',
    ],
    ...timings.map((t) => [
      t.name,
      t.meanMs.toFixed(1),
      t.stddevMs.toFixed(1),
      `${(t.meanMs / runcMs).toFixed(2)}x`,
      `${(t.meanMs / dockerMs).toFixed(2)}x`,
    ]),
  ]),
);
if (dockerTimings === null)
  console.log(
    'docker run --rm: MEASURED.md ~360 ms on these machines, not this run (no private dockerd could start)',
  );
console.log(`shim RSS per running container: ${(rssKb / 1024).toFixed(2)} MB (${rssKb} kB)`);

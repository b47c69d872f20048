// RUN: the command runs in our runtime on the stage's layers with a writable layer the
// builder owns, and what it changed becomes the step's layer. A pushed repo is untrusted, so
// a RUN step is a container like an app's: its own network namespace on the bridge (outbound
// NAT, the runtime's resolv.conf and the bridge's network policy), never the host's, where it
// could reach 127.0.0.1-only services, sniff the API port or bind beside the router. It sees
// the host's CA bundle (so installs work behind a TLS-intercepting proxy) and runs under the
// build limits (limits.ts): memory, pids, CPU, a timeout and the build's disk budget.
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BuildFailed, BuildLimitExceeded } from '../errors/index.ts';
import type { Runtime } from '../runtime/index.ts';
import { humanBytes, treeBytes, type BuildLimits, type DiskBudget } from './limits.ts';
import { stepKey } from './cache.ts';
import { commandOf, envMap } from './config.ts';
import type { Instr } from './parse.ts';
import type { BuildSession, StageState } from './session.ts';
import { LayerStack, type Lookup } from './stack.ts';
import { CA_TARGET, caEnv, HOST_CA_BUNDLE } from './ca.ts';
import { cleanMountPoints, snapshotMountPoints, type Snapshot } from './view.ts';

export type RunStep = {
  runtime: Runtime;
  /** Stage layers, topmost first (may be empty for FROM scratch). */
  lowers: string[];
  /** The same layers, to see which mount points exist before the run. */
  image: Lookup;
  upper: string;
  work: string;
  /** An empty directory, the lower layer of an image with no layers. */
  empty: string;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  user: string;
  limits: BuildLimits;
  /** The build's disk budget: the upper dir may grow to what is left of it. */
  disk: DiskBudget;
  /** Step number, for the limit errors. */
  step: number;
  onLine: (line: string) => void;
};

export type RunResult = { exitCode: number; signal: string | null };

/** Shortest pause between two measurements of the upper dir. */
const DISK_POLL_MS = 500;

/**
 * Watches the upper dir while the step runs and aborts it once it holds more than the disk
 * budget left. The walk's cost grows with the tree (node_modules), so the pause after each
 * walk is ten times its duration: the watch stays under a tenth of a core.
 */
function watchDisk(
  upper: string,
  cap: number,
  ac: AbortController,
): { stop(): void; over: () => boolean } {
  let over = false;
  let stopped = false;
  void (async () => {
    while (!stopped && !ac.signal.aborted) {
      const t0 = performance.now();
      const used = await treeBytes(upper, cap);
      if (used > cap) {
        over = true;
        ac.abort();
        return;
      }
      await sleep(Math.max(DISK_POLL_MS, 10 * (performance.now() - t0)), undefined, { ref: false });
    }
  })();
  return { stop: () => (stopped = true), over: () => over };
}

export async function runStep(s: RunStep): Promise<RunResult> {
  const volumes = existsSync(HOST_CA_BUNDLE)
    ? [{ source: HOST_CA_BUNDLE, target: CA_TARGET, readonly: true }]
    : [];
  const cwd = s.cwd || '/';
  const before: Snapshot = await snapshotMountPoints(s.image, cwd === '/' ? [] : [cwd.slice(1)]);
  await fsp.mkdir(s.upper, { recursive: true });
  await fsp.mkdir(s.work, { recursive: true });
  const { limits } = s;
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, limits.timeoutMs);
  const left = s.disk.remaining();
  const disk = watchDisk(s.upper, left, ac);
  let res;
  try {
    res = await s.runtime.run(
      {
        rootfs: {
          lowers: s.lowers.length > 0 ? s.lowers : [s.empty],
          upper: s.upper,
          work: s.work,
        },
        command: s.command,
        env: { ...s.env, ...(volumes.length > 0 ? caEnv() : {}) },
        cwd,
        user: s.user || '0',
        net: 'bridge',
        limits: { memoryBytes: limits.memoryBytes, pids: limits.pids, cpus: limits.cpus },
        volumes,
        labels: { 'paas.build': 'run' },
      },
      { stdio: 'pipe', onLine: (_stream, line) => s.onLine(line), signal: ac.signal },
    );
  } finally {
    clearTimeout(timer);
    disk.stop();
    // overlayfs leaves its work dir's contents root-only; it is never part of the layer.
    await fsp.rm(s.work, { recursive: true, force: true });
  }
  const failed = res.exitCode !== 0 || res.signal !== null;
  // A step that failed after running into a limit fails for that limit, so the pusher learns
  // which flag to raise rather than seeing a bare SIGKILL or "can't fork".
  if (failed) {
    const step = s.step;
    if (res.limitsHit?.memory === true)
      throw new BuildLimitExceeded(
        `step ${step} ran out of memory: it reached the build memory limit of ${humanBytes(limits.memoryBytes)} (daemon flag --build-memory)`,
        { limit: 'memory', bytes: limits.memoryBytes, step },
      );
    if (res.limitsHit?.pids === true)
      throw new BuildLimitExceeded(
        `step ${step} reached the build pids limit of ${limits.pids} processes and threads (daemon flag --build-pids)`,
        { limit: 'pids', pids: limits.pids, step },
      );
    if (disk.over()) throw s.disk.exceeded(`step ${step}`, left, step);
    if (timedOut)
      throw new BuildLimitExceeded(
        `step ${step} ran longer than the build timeout of ${Math.round(limits.timeoutMs / 1000)} s (daemon flag --build-timeout)`,
        { limit: 'timeout', ms: limits.timeoutMs, step },
      );
  }
  if (!failed) {
    await cleanMountPoints(s.upper, before);
    s.disk.charge(await treeBytes(s.upper), `step ${s.step}`, s.step);
  }
  return { exitCode: res.exitCode, signal: res.signal };
}

export function tmpPaths(dir: string): { upper: string; work: string } {
  return { upper: path.join(dir, 'upper'), work: path.join(dir, 'work') };
}

/** RUN: the command in a container on the stage's layers; returns whether the layer was cached. */
export async function runInstr(
  session: BuildSession,
  st: StageState,
  i: Instr,
  stepN: number,
): Promise<boolean> {
  const command = commandOf(i, st.config);
  const env = Object.fromEntries([...st.args, ...envMap(st.config)]);
  const key = stepKey({
    parent: st.key,
    instruction: `RUN ${JSON.stringify(command)}`,
    args: st.args,
  });
  const { total } = session;
  return session.layerStep(st, key, `RUN ${JSON.stringify(command)}`, async () => {
    const dir = await session.tmp('run');
    const upper = path.join(dir, 'upper');
    const lowers = await session.layerDirs(st.layers);
    const res = await runStep({
      runtime: session.runtime,
      lowers,
      image: new LayerStack(lowers),
      upper,
      work: path.join(dir, 'work'),
      empty: session.empty,
      command,
      env,
      cwd: st.config.WorkingDir || '/',
      user: st.config.User || '0',
      limits: session.limits,
      disk: session.disk,
      step: stepN,
      onLine: session.out,
    }).catch((err: unknown) => {
      if (err instanceof BuildLimitExceeded) throw err;
      // The container could not start (bad USER, missing shell…): still this step's failure.
      const why = err instanceof Error ? err.message : String(err);
      throw new BuildFailed(
        `step ${stepN}/${total} (${i.text}) failed: ${why}`,
        { step: stepN, instruction: i.text, exitCode: null, line: i.line },
        { cause: err },
      );
    });
    if (res.exitCode !== 0 || res.signal !== null) {
      const how =
        res.signal !== null
          ? `was killed by ${res.signal}`
          : `returned a non-zero code: ${res.exitCode}`;
      throw new BuildFailed(
        `step ${stepN}/${total} (${i.text}) failed: the command ${JSON.stringify(command)} ${how}`,
        {
          step: stepN,
          instruction: i.text,
          exitCode: res.exitCode,
          signal: res.signal,
          line: i.line,
        },
      );
    }
    return upper;
  });
}

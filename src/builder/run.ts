// RUN: the command runs in our runtime on the stage's layers with a writable layer the
// builder owns, and what it changed becomes the step's layer. Builds use the host network
// and see the host's CA bundle (so installs work behind a TLS-intercepting proxy), under a
// memory limit so a build cannot take the box down.
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Runtime } from '../runtime/index.ts';
import type { Lookup } from './stack.ts';
import { CA_TARGET, cleanMountPoints, snapshotMountPoints, type Snapshot } from './view.ts';

export const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Env given to RUN only (never persisted in the image config). */
export function caEnv(): Record<string, string> {
  return { SSL_CERT_FILE: CA_TARGET, NODE_EXTRA_CA_CERTS: CA_TARGET, npm_config_cafile: CA_TARGET };
}

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
  memoryBytes: number;
  onLine: (line: string) => void;
};

export type RunResult = { exitCode: number; signal: string | null };

export async function runStep(s: RunStep): Promise<RunResult> {
  const volumes = existsSync(HOST_CA_BUNDLE)
    ? [{ source: HOST_CA_BUNDLE, target: CA_TARGET, readonly: true }]
    : [];
  const cwd = s.cwd || '/';
  const before: Snapshot = await snapshotMountPoints(s.image, cwd === '/' ? [] : [cwd.slice(1)]);
  await fsp.mkdir(s.upper, { recursive: true });
  await fsp.mkdir(s.work, { recursive: true });
  const res = await s.runtime.run(
    {
      rootfs: { lowers: s.lowers.length > 0 ? s.lowers : [s.empty], upper: s.upper, work: s.work },
      command: s.command,
      env: { ...s.env, ...(volumes.length > 0 ? caEnv() : {}) },
      cwd,
      user: s.user || '0',
      net: 'host',
      limits: { memoryBytes: s.memoryBytes },
      volumes,
      labels: { 'paas.build': 'run' },
    },
    { stdio: 'pipe', onLine: (_stream, line) => s.onLine(line) },
  );
  // overlayfs leaves its work dir's contents root-only; it is never part of the layer.
  await fsp.rm(s.work, { recursive: true, force: true });
  if (res.exitCode === 0 && res.signal === null) await cleanMountPoints(s.upper, before);
  return { exitCode: res.exitCode, signal: res.signal };
}

export function tmpPaths(dir: string): { upper: string; work: string } {
  return { upper: path.join(dir, 'upper'), work: path.join(dir, 'work') };
}

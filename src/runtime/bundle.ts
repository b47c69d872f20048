// The bundle directory shared with native/ (see native/SPEC.md): the spec file we write, and
// the state, exit and log files the shim writes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerInfo, RuntimeName } from './types.ts';
import type { NormalizedSpec } from './spec.ts';

/** What TypeScript keeps about a container, beside the shim's files. */
export interface Meta {
  id: string;
  runtime: RuntimeName;
  spec: NormalizedSpec;
  uid: number;
  gid: number;
  groups: number[];
  ip: string | null;
  netnsPath: string | null;
  cgroup: string;
  createdAt: string;
  startedAt: string | null;
}

export interface ShimState {
  shimPid: number;
  initPid: number;
  initStart: string;
}

export interface ShimExit {
  exitCode: number;
  signal: number | null;
  at: string;
}

export function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

/** Encodes directives as native/SPEC.md's `key value` lines. */
export function encodeSpec(lines: [string, string][]): string {
  return lines.map(([k, v]) => `${k} ${escapeValue(v)}`).join('\n') + '\n';
}

/** The writable layer of a layered root: the caller's, or the bundle's own. */
export function writableDirs(
  bundle: string,
  spec: NormalizedSpec,
): { upper: string; work: string } {
  const r = spec.rootfs;
  if ('lowers' in r && r.upper !== undefined && r.work !== undefined)
    return { upper: r.upper, work: r.work };
  return { upper: join(bundle, 'upper'), work: join(bundle, 'work') };
}

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export const files = {
  meta: (b: string) => join(b, 'meta.json'),
  spec: (b: string) => join(b, 'spec'),
  state: (b: string) => join(b, 'state'),
  exit: (b: string) => join(b, 'exit'),
  log: (b: string) => join(b, 'log'),
  logMax: (b: string) => join(b, 'log-max'),
  error: (b: string) => join(b, 'error'),
  rootfs: (b: string) => join(b, 'rootfs'),
};

/** Field 22 of /proc/PID/stat (start time in clock ticks): tells a live pid from a reused one. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export function isAlive(state: ShimState | null): boolean {
  if (state === null) return false;
  const st = procStartTime(state.initPid);
  return st !== null && st === state.initStart;
}

export type Info = ContainerInfo;

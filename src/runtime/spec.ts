// Validation of container specs and limit syntax: the runtime's border. Each error names the
// field, so `paas container:run --memory 12q` says which flag is wrong.
import { randomBytes } from 'node:crypto';
import { isAbsolute, normalize } from 'node:path';
import { statSync } from 'node:fs';
// The validators' own file: the runtime has no use for the SQLite state behind apps/index.ts.
import { isHostname } from '../apps/validate.ts';
import { InvalidSpec } from '../errors/index.ts';
import type { ContainerSpec, Limits, NetMode, RootfsSpec, UsernsMapping, Volume } from './types.ts';

export interface NormalizedSpec {
  id: string;
  rootfs: RootfsSpec;
  readonly: boolean;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  user: string;
  hostname: string;
  net: NetMode;
  limits: Limits;
  volumes: Volume[];
  stopSignal: string;
  labels: Record<string, string>;
  userns?: UsernsMapping;
  netRaw: boolean;
}

const ID = /^[a-z0-9][a-z0-9_.-]{0,127}$/;

/** Whether `id` is a container id a spec may carry (and so a bundle directory's name). */
export function isContainerId(id: string): boolean {
  return ID.test(id);
}
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;

export const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
  SIGWINCH: 28,
};

export function newContainerId(): string {
  return randomBytes(8).toString('hex');
}

function bad(field: string, message: string): never {
  throw new InvalidSpec(`${field}: ${message}`, { field });
}

function absolutePath(field: string, p: unknown): string {
  if (typeof p !== 'string' || p.length === 0) bad(field, 'a path is required');
  if (p.includes('\0')) bad(field, 'contains a NUL byte');
  if (!isAbsolute(p)) bad(field, `"${p}" is not an absolute path`);
  const n = normalize(p);
  if (p.split('/').includes('..')) bad(field, `"${p}" contains ".."`);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function existingDir(field: string, p: unknown): string {
  const dir = absolutePath(field, p);
  let st;
  try {
    st = statSync(dir);
  } catch {
    bad(field, `"${dir}" does not exist`);
  }
  if (!st.isDirectory()) bad(field, `"${dir}" is not a directory`);
  return dir;
}

/** `64m`, `1g`, `512k`, `1048576`, `256MiB` → bytes. */
export function parseMemory(raw: string, field = 'memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(raw.trim());
  if (m === null) bad(field, `"${raw}" is not a size (examples: 64m, 1g, 512k)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
  const bytes = Math.floor(Number(m[1]) * mult);
  if (bytes < 4 * 1024 * 1024) bad(field, `"${raw}" is below the 4m minimum`);
  return bytes;
}

/** `0.5`, `2` → cores. */
export function parseCpus(raw: string, field = 'cpus'): number {
  if (!/^\d+(?:\.\d+)?$/.test(raw.trim()))
    bad(field, `"${raw}" is not a number of CPUs (example: 0.5)`);
  const n = Number(raw);
  if (n < 0.01 || n > 1024) bad(field, `"${raw}" must be between 0.01 and 1024`);
  return n;
}

export function parsePids(raw: string, field = 'pids'): number {
  if (!/^\d+$/.test(raw.trim())) bad(field, `"${raw}" is not a whole number`);
  const n = Number(raw);
  if (n < 1 || n > 4194304) bad(field, `"${raw}" must be between 1 and 4194304`);
  return n;
}

function checkLimits(l: Limits | undefined): Limits {
  const out: Limits = {};
  if (l === undefined) return out;
  if (l.memoryBytes !== undefined) {
    if (!Number.isSafeInteger(l.memoryBytes) || l.memoryBytes < 4 * 1024 * 1024)
      bad('limits.memoryBytes', 'must be an integer ≥ 4 MiB');
    out.memoryBytes = l.memoryBytes;
  }
  if (l.cpus !== undefined) {
    if (!Number.isFinite(l.cpus) || l.cpus < 0.01) bad('limits.cpus', 'must be ≥ 0.01');
    out.cpus = l.cpus;
  }
  if (l.pids !== undefined) {
    if (!Number.isSafeInteger(l.pids) || l.pids < 1)
      bad('limits.pids', 'must be a positive integer');
    out.pids = l.pids;
  }
  return out;
}

/** Highest valid id + 1: (uid_t)-1 is not an id (user_namespaces(7)). */
const ID_LIMIT = 2 ** 32 - 1;

/**
 * A mapping must keep host 0 out (the container's root would be host root again) and stay
 * below 2^32-1. A writable plain root directory would be written as host root through its
 * idmapped mount, so userns needs layers (or a read-only root).
 */
function checkUserns(u: unknown, rootfs: RootfsSpec, readonly: boolean): UsernsMapping {
  if (typeof u !== 'object' || u === null) bad('userns', 'must be { hostUid, hostGid, count }');
  const m = u as Record<string, unknown>;
  const int = (field: 'hostUid' | 'hostGid' | 'count', min: number): number => {
    const v = m[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v >= ID_LIMIT) {
      bad(
        `userns.${field}`,
        `${JSON.stringify(v) ?? String(v)} must be an integer from ${min} to ${ID_LIMIT - 1}`,
      );
    }
    return v;
  };
  const hostUid = int('hostUid', 1);
  const hostGid = int('hostGid', 1);
  const count = int('count', 1);
  if (hostUid + count > ID_LIMIT)
    bad('userns.count', `hostUid ${hostUid} + count ${count} passes ${ID_LIMIT}`);
  if (hostGid + count > ID_LIMIT)
    bad('userns.count', `hostGid ${hostGid} + count ${count} passes ${ID_LIMIT}`);
  if ('dir' in rootfs && !readonly)
    bad('userns', 'a writable rootfs directory is not supported (use rootfs.lowers, or readonly)');
  return { hostUid, hostGid, count };
}

export function parseSpec(spec: ContainerSpec): NormalizedSpec {
  const id = spec.id ?? newContainerId();
  if (!ID.test(id)) bad('id', `"${id}" must match ${ID.source}`);

  let rootfs: RootfsSpec;
  if ('dir' in spec.rootfs) {
    rootfs = { dir: existingDir('rootfs', spec.rootfs.dir) };
  } else {
    if (!Array.isArray(spec.rootfs.lowers) || spec.rootfs.lowers.length === 0)
      bad('rootfs.lowers', 'at least one layer is required');
    const lowers = spec.rootfs.lowers.map((d, i) => existingDir(`rootfs.lowers[${i}]`, d));
    const { upper, work } = spec.rootfs;
    if ((upper === undefined) !== (work === undefined))
      bad('rootfs.upper', 'upper and work go together');
    rootfs =
      upper === undefined || work === undefined
        ? { lowers }
        : {
            lowers,
            upper: existingDir('rootfs.upper', upper),
            work: existingDir('rootfs.work', work),
          };
  }

  if (!Array.isArray(spec.command) || spec.command.length === 0)
    bad('command', 'a command is required');
  for (const [i, a] of spec.command.entries()) {
    if (typeof a !== 'string' || a.includes('\0'))
      bad(`command[${i}]`, 'must be a string without NUL');
  }

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (!ENV_KEY.test(k)) bad(`env.${k}`, 'is not a valid variable name');
    if (typeof v !== 'string' || v.includes('\0'))
      bad(`env.${k}`, 'value must be a string without NUL');
    env[k] = v;
  }
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

  const cwd = spec.cwd === undefined || spec.cwd === '' ? '/' : absolutePath('cwd', spec.cwd);
  const user = spec.user === undefined || spec.user === '' ? '0' : spec.user;
  if (!USER.test(user)) bad('user', `"${user}" is not a user name or uid[:gid]`);

  const hostname = spec.hostname ?? id.slice(0, 12);
  if (!isHostname(hostname)) bad('hostname', `"${hostname}" is not a valid hostname`);

  const net = spec.net ?? 'none';
  if (net !== 'none' && net !== 'bridge' && net !== 'host')
    bad('net', `"${String(net)}" must be none, bridge or host`);

  const volumes = (spec.volumes ?? []).map((v, i) => ({
    source: absolutePath(`volumes[${i}].source`, v.source),
    target: absolutePath(`volumes[${i}].target`, v.target),
    readonly: v.readonly === true,
    initOwner: v.initOwner === true,
  }));
  for (const [i, v] of volumes.entries()) {
    try {
      statSync(v.source);
    } catch {
      bad(`volumes[${i}].source`, `"${v.source}" does not exist`);
    }
  }

  const stopSignal = spec.stopSignal ?? 'SIGTERM';
  if (SIGNALS[stopSignal] === undefined)
    bad('stopSignal', `"${stopSignal}" is not one of ${Object.keys(SIGNALS).join(', ')}`);

  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.labels ?? {})) labels[k] = String(v);

  const out: NormalizedSpec = {
    id,
    rootfs,
    readonly: spec.readonly === true,
    command: [...spec.command],
    env,
    cwd,
    user,
    hostname,
    net,
    limits: checkLimits(spec.limits),
    volumes,
    stopSignal,
    labels,
    netRaw: spec.netRaw === true,
  };
  if (spec.userns !== undefined) out.userns = checkUserns(spec.userns, rootfs, out.readonly);
  return out;
}

// cgroup setup, limits and accounting on v1, v2 and hybrid hosts. Policy lives here; the
// native shim only writes the init pid into the directories this module creates.
//
// Hybrid (this machine): v1 controllers plus a v2 mount with no controllers. The v2 mount is
// then useless for limits, so the mode is chosen by where the memory controller lives, not by
// whether a cgroup2 mount exists.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Limits, Stats } from './types.ts';

export type CgroupMode = 'v1' | 'v2' | 'hybrid';

export interface CgroupLayout {
  mode: CgroupMode;
  /** v1: mount point of each controller we use; v2: the unified mount. */
  v1: { memory?: string; cpu?: string; cpuacct?: string; pids?: string };
  v2: string | null;
  /** Every cgroup mount: runc also creates directories in hierarchies we do not use. */
  all: string[];
}

interface Mount {
  point: string;
  fstype: string;
  superOptions: string[];
}

function cgroupMounts(mountinfo: string): Mount[] {
  const out: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // mountinfo(5): fields before " - " then fstype, source, super options.
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const fstype = post[0] ?? '';
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    out.push({
      point: (pre[4] ?? '').replace(/\\040/g, ' '),
      fstype,
      superOptions: (post[2] ?? '').split(','),
    });
  }
  return out;
}

/** Reads the layout from mountinfo text; `controllers` lists a v2 mount's cgroup.controllers. */
export function layoutFrom(
  mountinfo: string,
  controllers: (v2Mount: string) => string[],
): CgroupLayout {
  const mounts = cgroupMounts(mountinfo);
  const v1: CgroupLayout['v1'] = {};
  for (const m of mounts.filter((x) => x.fstype === 'cgroup')) {
    for (const c of ['memory', 'cpu', 'cpuacct', 'pids'] as const) {
      if (m.superOptions.includes(c) && v1[c] === undefined) v1[c] = m.point;
    }
  }
  const v2 = mounts.find((m) => m.fstype === 'cgroup2')?.point ?? null;
  let mode: CgroupMode;
  if (v1.memory !== undefined) mode = v2 !== null ? 'hybrid' : 'v1';
  else if (v2 !== null && controllers(v2).includes('memory')) mode = 'v2';
  else throw new Error('cgroups: no memory controller found on v1 or v2');
  return { mode, v1, v2, all: mounts.map((m) => m.point) };
}

let cached: CgroupLayout | null = null;

export function detectCgroups(): CgroupLayout {
  cached ??= layoutFrom(readFileSync('/proc/self/mountinfo', 'utf8'), (v2) => {
    try {
      return readFileSync(join(v2, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    } catch {
      return [];
    }
  });
  return cached;
}

function write(file: string, value: string): void {
  writeFileSync(file, value);
}

function readNum(file: string): number {
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t === 'max' ? Number.POSITIVE_INFINITY : Number(t);
  } catch {
    return 0;
  }
}

function readKeyed(file: string): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.split(/\s+/);
      if (k !== undefined && k !== '' && v !== undefined) m.set(k, Number(v));
    }
  } catch {
    // a missing file reads as empty
  }
  return m;
}

const CFS_PERIOD_US = 100_000;

/** A cgroup directory and every cgroup below it, parents first. */
function subtree(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const e of readdirSync(out[i] as string, { withFileTypes: true }))
        if (e.isDirectory()) out.push(join(out[i] as string, e.name));
    } catch {
      // gone or not a directory
    }
  }
  return out;
}

function subtreeHasOom(memDir: string): boolean {
  if (
    subtree(memDir).some((d) => (readKeyed(join(d, 'memory.oom_control')).get('oom_kill') ?? 0) > 0)
  )
    return true;
  if (readNum(join(memDir, 'memory.failcnt')) > 0) return true;
  const limit = readNum(join(memDir, 'memory.limit_in_bytes'));
  return limit < 2 ** 60 && readNum(join(memDir, 'memory.max_usage_in_bytes')) >= limit;
}

function readProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A container's cgroup: one directory per v1 hierarchy, or one v2 directory. */
export class Cgroup {
  readonly layout: CgroupLayout;
  readonly relPath: string;

  constructor(relPath: string, layout: CgroupLayout = detectCgroups()) {
    this.layout = layout;
    this.relPath = relPath;
  }

  /** Directories whose cgroup.procs receives the container's init (the spec's `cgroup` lines). */
  dirs(): string[] {
    if (this.layout.mode === 'v2') return [join(this.layout.v2 as string, this.relPath)];
    const set = new Set(Object.values(this.layout.v1).map((p) => join(p, this.relPath)));
    return [...set];
  }

  private v1(ctrl: keyof CgroupLayout['v1']): string | null {
    const p = this.layout.v1[ctrl];
    return p === undefined ? null : join(p, this.relPath);
  }

  private v2dir(): string {
    return join(this.layout.v2 as string, this.relPath);
  }

  create(limits: Limits): void {
    if (this.layout.mode === 'v2') {
      // cgroup v2 (Documentation/admin-guide/cgroup-v2.rst "Top-down constraint"): controllers
      // must be enabled in every ancestor's subtree_control before a leaf can use them.
      const root = this.layout.v2 as string;
      const parts = this.relPath.split('/').filter(Boolean);
      let cur = root;
      for (const p of parts) {
        try {
          write(join(cur, 'cgroup.subtree_control'), '+memory +cpu +pids');
        } catch {
          // a controller may be unavailable; limits that need it fail below with a clear error
        }
        cur = join(cur, p);
        mkdirSync(cur, { recursive: true });
      }
    } else {
      for (const d of this.dirs()) mkdirSync(d, { recursive: true });
    }
    this.apply(limits);
  }

  apply(limits: Limits): void {
    if (this.layout.mode === 'v2') {
      const d = this.v2dir();
      if (limits.memoryBytes !== undefined) {
        write(join(d, 'memory.max'), String(limits.memoryBytes));
        if (existsSync(join(d, 'memory.swap.max'))) write(join(d, 'memory.swap.max'), '0');
      }
      if (limits.cpus !== undefined)
        write(join(d, 'cpu.max'), `${Math.round(limits.cpus * CFS_PERIOD_US)} ${CFS_PERIOD_US}`);
      if (limits.pids !== undefined) write(join(d, 'pids.max'), String(limits.pids));
      return;
    }
    const mem = this.v1('memory');
    if (limits.memoryBytes !== undefined && mem !== null) {
      write(join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // Hold swap to the same limit, so the limit means what it says (Docker's --memory-swap default).
      const memsw = join(mem, 'memory.memsw.limit_in_bytes');
      if (existsSync(memsw)) write(memsw, String(limits.memoryBytes));
    }
    const cpu = this.v1('cpu');
    if (limits.cpus !== undefined && cpu !== null) {
      write(join(cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      write(join(cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * CFS_PERIOD_US)));
    }
    const pids = this.v1('pids');
    if (limits.pids !== undefined && pids !== null)
      write(join(pids, 'pids.max'), String(limits.pids));
  }

  stats(): Stats {
    if (this.layout.mode === 'v2') {
      const d = this.v2dir();
      const limit = readNum(join(d, 'memory.max'));
      return {
        memoryBytes: readNum(join(d, 'memory.current')),
        memoryLimitBytes: Number.isFinite(limit) && limit > 0 ? limit : null,
        cpuNanos: (readKeyed(join(d, 'cpu.stat')).get('usage_usec') ?? 0) * 1000,
        pids: readNum(join(d, 'pids.current')),
        oomKills: readKeyed(join(d, 'memory.events')).get('oom_kill') ?? 0,
        pidsLimitHits: readKeyed(join(d, 'pids.events')).get('max') ?? 0,
      };
    }
    const mem = this.v1('memory');
    const acct = this.v1('cpuacct');
    const pids = this.v1('pids');
    const limit = mem === null ? 0 : readNum(join(mem, 'memory.limit_in_bytes'));
    return {
      memoryBytes: mem === null ? 0 : readNum(join(mem, 'memory.usage_in_bytes')),
      // v1 reports "no limit" as a page-rounded LONG_MAX.
      memoryLimitBytes: limit > 0 && limit < 2 ** 60 ? limit : null,
      cpuNanos: acct === null ? 0 : readNum(join(acct, 'cpuacct.usage')),
      pids: pids === null ? 0 : readNum(join(pids, 'pids.current')),
      // v1 counts oom_kill only in the victim's own memcg, which runc removes with its child
      // cgroup; usage having reached our limit (failcnt, max_usage) is the trace that stays.
      oomKills:
        mem === null
          ? 0
          : readKeyed(join(mem, 'memory.oom_control')).get('oom_kill') ||
            (subtreeHasOom(mem) ? 1 : 0),
      pidsLimitHits: pids === null ? 0 : (readKeyed(join(pids, 'pids.events')).get('max') ?? 0),
    };
  }

  /**
   * Whether the OOM killer killed a task here: only its kill counters, not v1's failcnt or
   * peak usage, which also move when page cache merely filled the limit and was reclaimed.
   */
  oomKilled(): boolean {
    if (this.layout.mode === 'v2')
      return (readKeyed(join(this.v2dir(), 'memory.events')).get('oom_kill') ?? 0) > 0;
    const mem = this.v1('memory');
    return (
      mem !== null &&
      subtree(mem).some((d) => (readKeyed(join(d, 'memory.oom_control')).get('oom_kill') ?? 0) > 0)
    );
  }

  /**
   * Whether a fork was refused at the pids limit. The `max` event is counted in the cgroup of
   * the task that forked, which may be a child already gone (runc's), so the peak of ours
   * reaching its limit counts too (pids.peak is hierarchical).
   */
  pidsLimitReached(): boolean {
    const d = this.layout.mode === 'v2' ? this.v2dir() : this.v1('pids');
    if (d === null) return false;
    const max = readNum(join(d, 'pids.max'));
    return (
      (readKeyed(join(d, 'pids.events')).get('max') ?? 0) > 0 ||
      (Number.isFinite(max) && max > 0 && readNum(join(d, 'pids.peak')) >= max)
    );
  }

  /** Pids still in the cgroup or below it (any hierarchy). */
  procs(): number[] {
    const d = this.dirs()[0];
    return d === undefined ? [] : [...new Set(subtree(d).flatMap(readProcs))];
  }

  /** Kills whatever is left in it and removes every directory, children first; safe to call twice. */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      for (const pid of this.procs()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      let busy = false;
      for (const top of this.layout.all.map((m) => join(m, this.relPath))) {
        for (const d of subtree(top).reverse()) {
          try {
            rmdirSync(d);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') busy = true;
          }
        }
      }
      if (!busy) return;
      // rmdir answers EBUSY until the kernel has torn down the last task (cgroups(7)).
      await sleep(20);
    }
    throw new Error(`cgroups: could not remove ${this.relPath}: still busy`);
  }

  exists(): boolean {
    return this.dirs().some((d) => existsSync(d));
  }
}

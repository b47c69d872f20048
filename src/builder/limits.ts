// Build limits: a pushed repo is untrusted, so every RUN step is a container with memory,
// pids and CPU limits, a wall-clock timeout, and a disk budget shared by the whole build (the
// context, every layer its steps write, and archives ADD unpacks). The daemon sets them with
// its --build-* flags; these defaults hold when it does not.
import { createReadStream, promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { BuildLimitExceeded, InvalidArgument } from '../errors/index.ts';
import { parseCpus, parseMemory, parsePids } from '../runtime/index.ts';

export type BuildLimits = {
  /** Memory of each RUN step, swap held to the same (bytes). */
  memoryBytes: number;
  /** Processes and threads of each RUN step. */
  pids: number;
  /** CPU quota of each RUN step, in cores. */
  cpus: number;
  /** Wall time of each RUN step (ms). */
  timeoutMs: number;
  /** Bytes one build may put on disk: context + layers written + archives unpacked. */
  diskBytes: number;
};

export const DEFAULT_BUILD_MEMORY = 2 * 1024 ** 3;

/** The largest build context (context.ts) a build reads when the caller sets none. */
export const DEFAULT_MAX_CONTEXT_BYTES = 512 * 1024 ** 2;

/**
 * 2 GiB is what `npm ci` of a large app and a webpack build need; 4096 tasks (Docker's and
 * Kubernetes' usual pids limit for a pod) are far above a real build and far below a fork
 * bomb; every core, since a build is the one thing the box is doing for the pusher; 30 min
 * is Heroku's build timeout (it is 60 there, for much larger apps); 10 GiB of disk holds any
 * node_modules we have seen several times over.
 */
export function defaultBuildLimits(): BuildLimits {
  return {
    memoryBytes: DEFAULT_BUILD_MEMORY,
    pids: 4096,
    cpus: availableParallelism(),
    timeoutMs: 30 * 60_000,
    diskBytes: 10 * 1024 ** 3,
  };
}

/** `90s`, `30m`, `2h`, or plain seconds → ms. */
export function parseDuration(raw: string, field = 'timeout'): number {
  const m = /^(\d+)\s*(ms|s|m|h)?$/i.exec(raw.trim());
  if (m === null)
    throw new InvalidArgument(`${field}: "${raw}" is not a duration (examples: 90s, 30m, 1h)`, {
      field,
    });
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase()] ?? 1000;
  const ms = Number(m[1]) * mult;
  if (ms < 1000 || ms > 24 * 3_600_000)
    throw new InvalidArgument(`${field}: "${raw}" must be between 1s and 24h`, { field });
  return ms;
}

/** The one validator of the daemon's --build-* flags (each error names its flag). */
export function parseBuildLimits(raw: {
  memory?: string;
  pids?: string;
  cpus?: string;
  timeout?: string;
  disk?: string;
}): BuildLimits {
  const d = defaultBuildLimits();
  return {
    memoryBytes:
      raw.memory === undefined ? d.memoryBytes : parseMemory(raw.memory, '--build-memory'),
    pids: raw.pids === undefined ? d.pids : parsePids(raw.pids, '--build-pids'),
    cpus: raw.cpus === undefined ? d.cpus : parseCpus(raw.cpus, '--build-cpus'),
    timeoutMs:
      raw.timeout === undefined ? d.timeoutMs : parseDuration(raw.timeout, '--build-timeout'),
    diskBytes: raw.disk === undefined ? d.diskBytes : parseMemory(raw.disk, '--build-disk'),
  };
}

export function humanBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/**
 * Space a tree takes: the larger of apparent size and allocated blocks per entry, so a
 * sparse file (`truncate -s 1T`) counts at what its layer tarball would hold. Entries that
 * vanish while we look are skipped (a RUN step is still writing). Stops once past `stopAt`.
 */
export async function treeBytes(dir: string, stopAt = Number.POSITIVE_INFINITY): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0 && total <= stopAt) {
    const d = stack.pop() as string;
    const entries = await fsp.readdir(d).catch(() => [] as string[]);
    // A directory's entries at once: one lstat round trip through the thread pool at a time
    // made the walk of a fresh node_modules cost seconds after every RUN step.
    const stats = await Promise.all(
      entries.map((name) => {
        const p = path.join(d, name);
        return fsp.lstat(p).then(
          (st) => ({ p, st }),
          () => null,
        );
      }),
    );
    for (const e of stats) {
      if (e === null) continue;
      total += Math.max(e.st.size, e.st.blocks * 512);
      if (e.st.isDirectory()) stack.push(e.p);
    }
  }
  return total;
}

/** One build's disk budget, charged as the build writes. */
export class DiskBudget {
  readonly limit: number;
  private used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  remaining(): number {
    return Math.max(0, this.limit - this.used);
  }

  /** Adds `bytes` written by `what`; past the limit the build fails naming it. */
  charge(bytes: number, what: string, step?: number): void {
    const left = this.remaining();
    this.used += bytes;
    if (this.used > this.limit) throw this.exceeded(what, left, step);
  }

  /** The error for `what` having needed more than the `left` bytes it was allowed. */
  exceeded(what: string, left: number, step?: number): Error {
    return new BuildLimitExceeded(
      `${what} went past the ${humanBytes(left)} left of the build's disk limit of ${humanBytes(this.limit)} (daemon flag --build-disk)`,
      { limit: 'disk', bytes: this.limit, ...(step === undefined ? {} : { step }) },
    );
  }
}

/**
 * What a tar (or tar.gz) would put on disk, read without writing anything: the sum of its
 * entries' sizes, stopping as soon as it passes `cap` (a gzip bomb is not inflated further).
 */
export async function archiveBytes(file: string, cap: number): Promise<number> {
  let total = 0;
  const over = new Error('over');
  const parser = new tar.Parser({
    onReadEntry: (e) => {
      total += e.size ?? 0;
      if (total > cap) parser.abort(over);
      e.resume();
    },
  });
  // The parser inflates gzip itself.
  const src = createReadStream(file);
  try {
    await pipeline(src, parser);
  } catch (e) {
    if (total <= cap) throw e;
  } finally {
    src.destroy();
  }
  return total;
}

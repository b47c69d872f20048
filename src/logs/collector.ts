// Moves lines from files other processes write into the per-app logs: each container's log
// file (written by its shim, which outlives the daemon) and the router's access log. Read
// offsets are saved after the lines land, so a daemon restart resumes where it stopped:
// a crash can repeat a few lines, never lose them.
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { writeFileWhole } from '../files/index.ts';
import type { LogStore } from './store.ts';

interface Offset {
  ino: number;
  offset: number;
}

/** Reads whole lines appended to a file since the last call; follows a rename-rotation to `.1`. */
export class Tailer {
  readonly path: string;
  pos: Offset;
  private partial: Buffer = Buffer.alloc(0);
  /** Longest partial line held back waiting for its newline before it is emitted as is. */
  static readonly MAX_PARTIAL = 64 * 1024;

  constructor(path: string, pos: Offset = { ino: 0, offset: 0 }) {
    this.path = path;
    this.pos = pos;
  }

  read(): Buffer[] {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return [];
    }
    const out: Buffer[] = [];
    if (this.pos.ino !== 0 && st.ino !== this.pos.ino) {
      // Rotated: finish the old generation first if it is where rotation put it, all of it,
      // past the per-call bound: the next rotation overwrites it, and a burst that outran the
      // polls (a busy box, a chatty app) would otherwise lose its unread tail.
      const old = `${this.path}.1`;
      if (existsSync(old) && statSync(old).ino === this.pos.ino) {
        for (let at = -1; this.pos.offset !== at;) {
          at = this.pos.offset;
          out.push(...this.readFrom(old));
        }
        if (this.partial.length > 0) out.push(this.partial);
      }
      this.pos = { ino: st.ino, offset: 0 };
      this.partial = Buffer.alloc(0);
    }
    if (this.pos.ino === 0) this.pos = { ino: st.ino, offset: 0 };
    if (st.size < this.pos.offset) this.pos.offset = 0; // truncated in place
    out.push(...this.readFrom(this.path));
    return out;
  }

  /** The lines of `path` from the saved offset on, at most 4 MiB of them. */
  private readFrom(path: string): Buffer[] {
    const fd = openSync(path, 'r');
    const lines: Buffer[] = [];
    try {
      const size = fstatSync(fd).size;
      // Bounded per call so one chatty container cannot stall the others.
      const end = Math.min(size, this.pos.offset + 4 * 1024 * 1024);
      if (end <= this.pos.offset) return lines;
      const buf = Buffer.alloc(end - this.pos.offset);
      readSync(fd, buf, 0, buf.length, this.pos.offset);
      this.pos.offset = end;
      let data = this.partial.length > 0 ? Buffer.concat([this.partial, buf]) : buf;
      let nl = data.indexOf(10);
      while (nl >= 0) {
        lines.push(data.subarray(0, nl));
        data = data.subarray(nl + 1);
        nl = data.indexOf(10);
      }
      if (data.length > Tailer.MAX_PARTIAL) {
        lines.push(data);
        this.partial = Buffer.alloc(0);
      } else {
        this.partial = Buffer.from(data);
      }
    } finally {
      closeSync(fd);
    }
    return lines;
  }
}

// The shim's line format: `<ISO time> <stdout|stderr> <text>`.
const SHIM_LINE = /^(\d{4}-\d\d-\d\dT[0-9:.]+Z?) (stdout|stderr) ?/;

interface Source {
  tailer: Tailer;
  onLines: (lines: Buffer[]) => void;
}

/**
 * The router's access log on disk, once read: haproxy writes it through a descriptor it
 * cannot reopen, so it is never rotated. Instead the collector frees what it has read and
 * saved (a hole punched over it; the file's apparent size grows, its blocks do not), keeping
 * the last `keep` bytes for a human's `tail`, in steps of `step`.
 */
export const ACCESS_LOG_FREE = { keep: 1024 * 1024, step: 8 * 1024 * 1024 };

export class LogCollector {
  private readonly store: LogStore;
  private readonly statePath: string;
  private readonly sources = new Map<string, Source>();
  private readonly saved: Record<string, Offset>;
  private timer: NodeJS.Timeout | null = null;
  private readonly free: { keep: number; step: number };
  /** How far the access log's generation `ino` is freed; the punch under way, if any. */
  private freed = { ino: 0, upTo: 0 };
  private freeing: Promise<void> | null = null;

  constructor(
    store: LogStore,
    opts: { routerAccessLog?: string; accessLogFree?: { keep: number; step: number } },
  ) {
    this.store = store;
    this.free = opts.accessLogFree ?? ACCESS_LOG_FREE;
    this.statePath = join(store.dir, 'offsets.json');
    this.saved = loadOffsets(this.statePath);
    if (opts.routerAccessLog !== undefined) {
      this.add('router', opts.routerAccessLog, (lines) => {
        for (const l of lines) this.routerLine(l);
      });
    }
  }

  private add(key: string, path: string, onLines: (lines: Buffer[]) => void): void {
    this.sources.set(key, { tailer: new Tailer(path, this.saved[key]), onLines });
  }

  private routerLine(raw: Buffer): void {
    let e: {
      app?: unknown;
      time?: unknown;
      method?: unknown;
      path?: unknown;
      status?: unknown;
      duration?: unknown;
      bytes?: unknown;
      host?: unknown;
      upstream?: unknown;
      requestId?: unknown;
    };
    try {
      e = JSON.parse(raw.toString()) as typeof e;
    } catch {
      return;
    }
    if (typeof e.app !== 'string' || !/^[a-z][a-z0-9-]{0,62}$/.test(e.app)) return;
    const ts = typeof e.time === 'number' ? new Date(e.time).toISOString() : undefined;
    const text = `method=${String(e.method)} path=${logfmtQuoted(String(e.path))} host=${String(e.host)} status=${String(e.status)} bytes=${String(e.bytes)} duration=${String(e.duration)}ms upstream=${String(e.upstream)} request_id=${String(e.requestId)}`;
    this.store.append(e.app, { source: 'router', text, ts });
  }

  /** Starts copying a container's output into its app's log, tagged `app[<ps>]`. */
  watchContainer(id: string, app: string, ps: string, logPath: string): void {
    if (this.sources.has(id)) return;
    this.add(id, logPath, (lines) => {
      for (const l of lines) {
        const s = l.toString('latin1', 0, Math.min(l.length, 40));
        const m = SHIM_LINE.exec(s);
        if (m === null) {
          this.store.append(app, { source: 'app', ps, text: l });
          continue;
        }
        const ts = new Date(m[1]!).toISOString();
        this.store.append(app, { source: 'app', ps, text: l.subarray(m[0].length), ts });
      }
    });
  }

  /** Drains what is left of a container's log and stops following it. */
  unwatchContainer(id: string): void {
    const s = this.sources.get(id);
    if (s === undefined) return;
    // Every bounded read until nothing is left: the tail of a burst is the last of this log.
    while (this.pollOne(id, s));
    this.sources.delete(id);
    delete this.saved[id];
    this.save();
  }

  private pollOne(key: string, s: Source): boolean {
    const lines = s.tailer.read();
    const before = this.saved[key];
    if (lines.length > 0) s.onLines(lines);
    const now = s.tailer.pos;
    if (before === undefined || before.ino !== now.ino || before.offset !== now.offset) {
      this.saved[key] = { ...now };
      return true;
    }
    return false;
  }

  poll(): void {
    let changed = false;
    for (const [key, s] of this.sources) {
      try {
        changed = this.pollOne(key, s) || changed;
      } catch {
        // A log file that vanished with its container: nothing more to read.
      }
    }
    if (changed) {
      this.save();
      this.freeAccessLog();
    }
  }

  /** Resolves when a punch started by a poll has finished (tests). */
  async settled(): Promise<void> {
    await this.freeing;
  }

  /** Frees the part of the access log read and saved, bar the last `keep` bytes. */
  private freeAccessLog(): void {
    const s = this.sources.get('router');
    const saved = this.saved.router;
    if (s === undefined || saved === undefined || this.freeing !== null) return;
    if (this.freed.ino !== saved.ino) this.freed = { ino: saved.ino, upTo: 0 };
    const upTo = Math.floor((saved.offset - this.free.keep) / 4096) * 4096;
    if (upTo - this.freed.upTo < this.free.step) return;
    try {
      // The generation read may have been rotated away since: it is not ours to touch then.
      if (statSync(s.tailer.path).ino !== saved.ino) return;
    } catch {
      return;
    }
    const from = this.freed.upTo;
    this.freeing = new Promise<void>((resolve) => {
      const args = ['--punch-hole', '--offset', String(from), '--length', String(upTo - from)];
      execFile('fallocate', [...args, s.tailer.path], (err) => {
        // A file system without holes keeps its log whole: tried again a step later.
        void err;
        if (this.freed.ino === saved.ino) this.freed.upTo = upTo;
        this.freeing = null;
        resolve();
      });
    });
  }

  start(intervalMs = 250): void {
    this.timer ??= setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.poll();
  }

  private save(): void {
    writeFileWhole(this.statePath, JSON.stringify(this.saved));
  }
}

function loadOffsets(path: string): Record<string, Offset> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, Offset>;
  } catch {
    return {};
  }
}

/**
 * A logfmt value in quotes, as log drains' parsers read it: a request target may carry `"`
 * and `\` (both planes pass them), which would otherwise end the value early.
 */
const logfmtQuoted = (s: string): string => `"${s.replace(/[\\"]/g, '\\$&')}"`;

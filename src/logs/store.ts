// Per-app log files with size-based retention, tail reads and live followers.
// Each app has `<dir>/<app>/current.log` and one rotated `previous.log`; when current passes
// half the app's budget it replaces previous, so an app never holds more than its budget.
import { EventEmitter } from 'node:events';
import {
  appendFileSync,
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  escapeBytes,
  formatLine,
  matches,
  parseLine,
  splitLong,
  type Filter,
  type LogLine,
  type Source,
} from './line.ts';

export const DEFAULT_RETENTION_BYTES = 50 * 1024 * 1024;

export interface AppendInput {
  source: Source;
  ps?: string | null;
  /** Raw text or bytes of one line (without its newline); escaped and split here. */
  text: string | Uint8Array;
  ts?: string;
}

export class LogStore {
  readonly dir: string;
  readonly retentionBytes: number;
  private readonly events = new EventEmitter();
  private readonly sizes = new Map<string, number>();

  constructor(opts: { dir: string; retentionBytes?: number }) {
    this.dir = opts.dir;
    this.retentionBytes = opts.retentionBytes ?? DEFAULT_RETENTION_BYTES;
    mkdirSync(this.dir, { recursive: true });
    this.events.setMaxListeners(0);
  }

  private files(app: string): { current: string; previous: string } {
    const d = join(this.dir, app);
    return { current: join(d, 'current.log'), previous: join(d, 'previous.log') };
  }

  append(app: string, input: AppendInput): LogLine[] {
    const raw = typeof input.text === 'string' ? Buffer.from(input.text) : input.text;
    const ts = input.ts ?? new Date().toISOString();
    const lines: LogLine[] = splitLong(escapeBytes(raw)).map((text) => ({
      ts,
      source: input.source,
      ps: input.ps ?? null,
      text,
    }));
    const data = lines.map((l) => `${formatLine(l)}\n`).join('');
    const f = this.files(app);
    let size = this.sizes.get(app);
    if (size === undefined) {
      mkdirSync(join(this.dir, app), { recursive: true });
      size = existsSync(f.current) ? statSync(f.current).size : 0;
    }
    const bytes = Buffer.byteLength(data);
    if (size > 0 && size + bytes > this.retentionBytes / 2) {
      renameSync(f.current, f.previous);
      size = 0;
    }
    appendFileSync(f.current, data);
    this.sizes.set(app, size + bytes);
    for (const l of lines) this.events.emit(app, l);
    return lines;
  }

  /** The last `n` lines matching the filter, oldest first. */
  tail(app: string, n: number, filter: Filter = {}): LogLine[] {
    const f = this.files(app);
    const out: LogLine[] = [];
    for (const file of [f.current, f.previous]) {
      if (out.length >= n) break;
      for (const s of readLinesBackwards(file)) {
        const l = parseLine(s);
        if (l === null || !matches(l, filter)) continue;
        out.push(l);
        if (out.length >= n) break;
      }
    }
    return out.reverse();
  }

  /** Calls fn for every line appended from now on; returns the unsubscribe function. */
  follow(app: string, filter: Filter, fn: (l: LogLine) => void): () => void {
    const h = (l: LogLine) => {
      if (matches(l, filter)) fn(l);
    };
    this.events.on(app, h);
    return () => this.events.off(app, h);
  }

  remove(app: string): void {
    this.sizes.delete(app);
    rmSync(join(this.dir, app), { recursive: true, force: true });
  }

  bytesUsed(app: string): number {
    const f = this.files(app);
    return [f.current, f.previous].reduce((a, p) => a + (existsSync(p) ? statSync(p).size : 0), 0);
  }
}

/** Lines of a file from the last to the first, read in chunks so a large file costs little. */
function* readLinesBackwards(file: string, chunk = 64 * 1024): Generator<string> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return;
  }
  try {
    let pos = fstatSync(fd).size;
    let rest = Buffer.alloc(0);
    let first = true;
    while (pos > 0) {
      const len = Math.min(chunk, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, pos);
      let data = Buffer.concat([buf, rest]);
      let nl = data.lastIndexOf(10);
      // Drop the trailing newline of the file's last line.
      if (first && nl === data.length - 1) {
        data = data.subarray(0, nl);
        nl = data.lastIndexOf(10);
      }
      while (nl >= 0) {
        yield data.subarray(nl + 1).toString();
        data = data.subarray(0, nl);
        nl = data.lastIndexOf(10);
      }
      rest = Buffer.from(data);
      first = false;
    }
    if (rest.length > 0) yield rest.toString();
  } finally {
    closeSync(fd);
  }
}

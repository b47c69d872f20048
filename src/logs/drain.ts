// What every drain shares: a bounded buffer that never makes the writer wait, and the count
// of lines it had to drop. A line enters with `push`, which is O(1) and never blocks: the log
// store calls it on the path that copies an app's output, so a slow or dead receiver may cost
// its own lines, never the app's, `paas logs`' or another drain's. The buffer is bounded in
// bytes, not lines: the log collector hands over up to 4 MiB of a container's output at once,
// which a healthy drain must absorb whatever the lines' length. Past `bufferBytes` the
// oldest lines go (recent lines matter more once a receiver is back), and the drops are told
// as a platform line, Heroku's L10: as soon as the drain delivers again, and while it stays
// down at most every `reportEveryMs`.
import type { LogLine } from './line.ts';
import type { DrainUrl } from './drain-url.ts';

export interface DrainOptions {
  /** Bytes of lines held while a drain is slow or down (default 8 MiB, two collector reads). */
  bufferBytes?: number;
  /** Delay of the first drop report while the drain stays down (default 5 s). */
  firstReportMs?: number;
  /** Gap between drop reports while the drain stays down (default 60 s). */
  reportEveryMs?: number;
  /** Reconnect/retry backoff: the first wait, doubled per failure up to the max (0.5 s → 30 s). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Extra trusted CA certificates (PEM) for syslog+tls and https, besides the system's. */
  ca?: string[];
  /** A syslog connection whose writes make no progress this long is redialled (default 60 s). */
  stallMs?: number;
  /** Connect (and TLS handshake) deadline (default 10 s). */
  connectTimeoutMs?: number;
  /** HTTPS: most lines in one POST (default 500) and the request deadline (default 30 s). */
  batchLines?: number;
  requestTimeoutMs?: number;
}

export type DrainState = 'connecting' | 'up' | 'down';

export interface DrainStats {
  state: DrainState;
  /** Lines waiting: queued, or taken by the transport and not yet confirmed sent. */
  buffered: number;
  /** Bytes of the queued lines' text. */
  bufferedBytes: number;
  delivered: number;
  dropped: number;
  lastError: string | null;
}

/** The platform's own line about a drain (drop reports); goes to the app's log. */
export type Report = (text: string) => void;

export abstract class Drain {
  readonly id: string;
  readonly app: string;
  readonly url: DrainUrl;
  protected readonly opts: Required<Omit<DrainOptions, 'ca'>> & { ca?: string[] };
  private readonly queue = new Deque<LogLine>();
  private queueBytes = 0;
  protected closed = false;
  protected state: DrainState = 'connecting';
  protected lastError: string | null = null;
  private delivered = 0;
  private dropped = 0;
  private unreported = 0;
  private dropSince: string | null = null;
  private lastReport = 0;
  private reportTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private readonly report: Report;

  constructor(id: string, app: string, url: DrainUrl, opts: DrainOptions, report: Report) {
    this.id = id;
    this.app = app;
    this.url = url;
    this.report = report;
    this.opts = {
      bufferBytes: opts.bufferBytes ?? 8 * 1024 * 1024,
      firstReportMs: opts.firstReportMs ?? 5000,
      reportEveryMs: opts.reportEveryMs ?? 60_000,
      backoffMinMs: opts.backoffMinMs ?? 500,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      stallMs: opts.stallMs ?? 60_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      batchLines: opts.batchLines ?? 500,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      ca: opts.ca,
    };
    this.backoffMs = this.opts.backoffMinMs;
  }

  /** Takes a line; never waits and never throws. */
  push(l: LogLine): void {
    if (this.closed) return;
    const size = Buffer.byteLength(l.text);
    let dropped = 0;
    while (this.queue.length > 0 && this.queueBytes + size > this.opts.bufferBytes) {
      this.take();
      dropped++;
    }
    this.lost(dropped);
    this.queue.push(l);
    this.queueBytes += size;
    try {
      this.kick();
    } catch (e) {
      this.failed(e);
    }
  }

  stats(): DrainStats {
    return {
      state: this.state,
      buffered: this.queue.length + this.inFlight(),
      bufferedBytes: this.queueBytes,
      delivered: this.delivered,
      dropped: this.dropped,
      lastError: this.lastError,
    };
  }

  close(): void {
    this.closed = true;
    if (this.reportTimer !== null) clearTimeout(this.reportTimer);
    this.reportTimer = null;
    this.shutdown();
  }

  protected get queued(): number {
    return this.queue.length;
  }

  /** The oldest queued line, now the transport's to send (or lose). */
  protected take(): LogLine | undefined {
    const l = this.queue.shift();
    if (l !== undefined) this.queueBytes -= Buffer.byteLength(l.text);
    return l;
  }

  /** Sends what is queued, if the transport is ready; called after every push. */
  protected abstract kick(): void;
  /** Lines taken from the queue but not yet confirmed sent. */
  protected abstract inFlight(): number;
  protected abstract shutdown(): void;

  protected lost(n: number): void {
    if (n <= 0) return;
    this.dropped += n;
    if (this.unreported === 0) this.dropSince = new Date().toISOString();
    this.unreported += n;
    if (this.reportTimer === null && !this.closed) {
      const at = Math.max(
        Date.now() + this.opts.firstReportMs,
        this.lastReport + this.opts.reportEveryMs,
      );
      this.reportTimer = setTimeout(() => this.tellDrops(), at - Date.now());
      this.reportTimer.unref();
    }
  }

  protected sent(n: number): void {
    this.delivered += n;
    const recovered = this.state !== 'up';
    this.state = 'up';
    this.backoffMs = this.opts.backoffMinMs;
    // Back after a failure: say what was lost now, as the receiver can hear it again.
    if (recovered && this.unreported > 0) setImmediate(() => this.tellDrops());
  }

  /** Records a failure; returns how long to wait before the next attempt. */
  protected failed(e: unknown): number {
    this.state = 'down';
    this.lastError = errorText(e);
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.backoffMaxMs);
    return wait;
  }

  private tellDrops(): void {
    if (this.reportTimer !== null) clearTimeout(this.reportTimer);
    this.reportTimer = null;
    if (this.unreported === 0 || this.closed) return;
    const n = this.unreported;
    const since = this.dropSince;
    this.unreported = 0;
    this.dropSince = null;
    this.lastReport = Date.now();
    // Heroku's L10 ("output buffer overflow"), so alerts written for Heroku's logs match.
    this.report(
      `Error L10 (drain buffer overflow): drain ${this.id} (${this.url.redacted}) dropped ${n} lines since ${since}`,
    );
  }
}

/** A person-readable cause that never includes a URL (it may hold credentials). */
function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/** A FIFO with O(1) push and shift. */
export class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(v: T): void {
    this.items.push(v);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

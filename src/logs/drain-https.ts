// https:// drains: lines POSTed in batches as one JSON array each (`Content-Type:
// application/json`), one request at a time per drain, so lines that arrive while a POST is
// out form the next batch. Each element:
//   {"time":"…Z","app":"myapp","source":"app|build|router|system","proc":"web.1|build|router|paas",
//    "message":"…","drain":"d.…"}
// A failed POST (no answer within the deadline, a network error, any status but 2xx) is sent
// again, the same batch with the same `Paas-Frame-Id` so a receiver can drop a repeat, after a
// backoff; meanwhile new lines wait in the drain's bounded buffer. Credentials in the URL go as
// Basic auth (as Heroku's HTTPS drains), the receiver's certificate is verified.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Drain, type DrainOptions, type Report } from './drain.ts';
import type { DrainUrl } from './drain-url.ts';
import type { LogLine } from './line.ts';
import { syslogFields } from './syslog.ts';

/** Largest batch body, bytes: a batch ends at this size or at `batchLines`, whichever comes first. */
const MAX_BATCH_BYTES = 1024 * 1024;

export interface DrainJsonLine {
  time: string;
  app: string;
  source: LogLine['source'];
  proc: string;
  message: string;
  drain: string;
}

export class HttpsDrain extends Drain {
  private readonly agent: Agent;
  private readonly target: URL;
  private readonly auth: string | null;
  private batch: LogLine[] | null = null;
  private frameId = '';
  private busy = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(id: string, app: string, url: DrainUrl, opts: DrainOptions, report: Report) {
    super(id, app, url, opts, report);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: this.opts.ca === undefined ? undefined : [...rootCertificates, ...this.opts.ca],
    });
    const u = new URL(url.href);
    this.auth =
      u.username === '' && u.password === ''
        ? null
        : `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    u.username = '';
    u.password = '';
    this.target = u;
  }

  protected inFlight(): number {
    return this.batch?.length ?? 0;
  }

  protected kick(): void {
    if (this.closed || this.busy || this.retryTimer !== null) return;
    if (this.batch === null) {
      if (this.queued === 0) return;
      const b: LogLine[] = [];
      let bytes = 0;
      while (this.queued > 0 && b.length < this.opts.batchLines && bytes < MAX_BATCH_BYTES) {
        const l = this.take() as LogLine;
        bytes += l.text.length + 100;
        b.push(l);
      }
      this.batch = b;
      this.frameId = randomUUID();
    }
    this.post(this.batch);
  }

  private post(batch: LogLine[]): void {
    this.busy = true;
    const body = Buffer.from(JSON.stringify(batch.map((l) => this.json(l))));
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      this.busy = false;
      if (this.closed) return;
      if (err === null) {
        this.batch = null;
        this.sent(batch.length);
        this.kick();
        return;
      }
      const wait = this.failed(err);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.kick();
      }, wait);
      this.retryTimer.unref();
    };
    const req = request(
      this.target,
      {
        method: 'POST',
        agent: this.agent,
        timeout: this.opts.requestTimeoutMs,
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          'user-agent': 'paas-drain',
          'paas-drain-id': this.id,
          'paas-msg-count': batch.length,
          'paas-frame-id': this.frameId,
          ...(this.auth === null ? {} : { authorization: this.auth }),
        },
      },
      (res) => {
        res.resume();
        res.on('error', (e) => finish(e));
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          finish(s >= 200 && s < 300 ? null : new Error(`the receiver answered HTTP ${s}`));
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`no answer within ${this.opts.requestTimeoutMs} ms`)),
    );
    req.on('error', (e) => finish(e));
    req.end(body);
  }

  private json(l: LogLine): DrainJsonLine {
    return {
      time: l.ts,
      app: this.app,
      source: l.source,
      proc: syslogFields(l).procId,
      message: l.text,
      drain: this.id,
    };
  }

  protected shutdown(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.agent.destroy();
  }
}

// Where the data planes run: in this process (one plane), or in cluster workers that each
// bind the same ports with SO_REUSEPORT so the kernel spreads connections over them. The
// primary holds the table; every worker gets each new table and reports its own drain.
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { WorkerPlane, type PlaneOptions } from './plane.ts';
import type { RouterCerts } from './certs.ts';
import { parseChallenges, type Challenges } from './challenge.ts';
import type { StateStats } from './state.ts';
import type { RouteTable } from './table.ts';

export interface WorkerStats extends StateStats {
  pid: number;
}

export interface Planes {
  readonly httpPort: number;
  readonly httpsPort: number | undefined;
  readonly count: number;
  apply(table: RouteTable, drainTimeoutMs: number): Promise<boolean>;
  /** Every data plane serves `certs` from its next handshake on. */
  setCerts(certs: RouterCerts): Promise<void>;
  /** Replace the ACME HTTP-01 answers of every plane; resolves once all have them. */
  setChallenges(challenges: Challenges): Promise<void>;
  stats(): Promise<WorkerStats[]>;
  reopenLogs(): void;
  close(drainTimeoutMs: number): Promise<void>;
}

/** Messages primary → worker. */
export type ToWorker =
  | { t: 'init'; opts: PlaneOptions; table: RouteTable; certs: RouterCerts }
  | { t: 'apply'; id: number; table: RouteTable; drainTimeoutMs: number }
  | { t: 'certs'; id: number; certs: RouterCerts }
  | { t: 'stats'; id: number }
  | { t: 'challenges'; id: number; challenges: Challenges }
  | { t: 'reopen' }
  | { t: 'close'; drainTimeoutMs: number };

/** Messages worker → primary. */
export type FromWorker =
  | { t: 'ready'; httpPort: number; httpsPort: number | undefined }
  | { t: 'failed'; message: string }
  | { t: 'applied'; id: number; drained: boolean }
  | { t: 'certsSet'; id: number }
  | { t: 'stats'; id: number; stats: WorkerStats }
  | { t: 'challenged'; id: number }
  | { t: 'closed' };

export class LocalPlanes implements Planes {
  readonly count = 1;
  private readonly plane: WorkerPlane;

  private constructor(plane: WorkerPlane) {
    this.plane = plane;
  }

  static async start(opts: PlaneOptions, table: RouteTable): Promise<LocalPlanes> {
    const plane = await WorkerPlane.start(opts);
    await plane.apply(table);
    return new LocalPlanes(plane);
  }

  get httpPort(): number {
    return this.plane.httpPort;
  }

  get httpsPort(): number | undefined {
    return this.plane.httpsPort;
  }

  apply(table: RouteTable, drainTimeoutMs: number): Promise<boolean> {
    return this.plane.apply(table, drainTimeoutMs);
  }

  async setCerts(certs: RouterCerts): Promise<void> {
    this.plane.setCerts(certs);
  }

  async setChallenges(challenges: Challenges): Promise<void> {
    this.plane.setChallenges(parseChallenges(challenges));
  }

  async stats(): Promise<WorkerStats[]> {
    return [{ pid: process.pid, ...this.plane.stats() }];
  }

  reopenLogs(): void {
    this.plane.reopenLogs();
  }

  close(drainTimeoutMs: number): Promise<void> {
    return this.plane.close(drainTimeoutMs);
  }
}

type Waiter = { need: Set<Worker>; got: unknown[]; resolve: (got: unknown[]) => void };

export class ClusterPlanes implements Planes {
  readonly count: number;
  httpPort = 0;
  httpsPort: number | undefined;
  private readonly opts: PlaneOptions;
  private table: RouteTable;
  private certs: RouterCerts = { hosts: {}, default: null };
  private challenges: Challenges = {};
  private readonly workers = new Set<Worker>();
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private closing = false;
  private readonly onLog: (msg: string) => void;

  private constructor(
    count: number,
    opts: PlaneOptions,
    table: RouteTable,
    onLog: (msg: string) => void,
  ) {
    this.count = count;
    this.opts = opts;
    this.table = table;
    this.onLog = onLog;
  }

  static async start(
    count: number,
    opts: PlaneOptions,
    table: RouteTable,
    onLog: (msg: string) => void,
  ): Promise<ClusterPlanes> {
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.ts', import.meta.url)),
      args: [],
      silent: false,
    });
    const p = new ClusterPlanes(count, opts, table, onLog);
    // The first worker binds the ports (port 0 picks one); the others join what it bound.
    const first = await p.spawn(opts);
    p.httpPort = first.httpPort;
    p.httpsPort = first.httpsPort;
    const fixed = { ...opts, httpPort: p.httpPort, httpsPort: p.httpsPort };
    await Promise.all(Array.from({ length: count - 1 }, () => p.spawn(fixed)));
    return p;
  }

  private spawn(opts: PlaneOptions): Promise<{ httpPort: number; httpsPort: number | undefined }> {
    const w = cluster.fork();
    let sent: RouteTable | undefined;
    let sentCerts: RouterCerts | undefined;
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        if (m.t === 'ready') {
          this.workers.add(w);
          // A table applied while this worker was starting did not reach it: send it now.
          if (sent !== this.table)
            w.send({
              t: 'apply',
              id: 0,
              table: this.table,
              drainTimeoutMs: this.opts.limits.drainTimeoutMs,
            } satisfies ToWorker);
          // Same for certificates: a restarted worker serves the last set, not none.
          if (sentCerts !== this.certs)
            w.send({ t: 'certs', id: 0, certs: this.certs } satisfies ToWorker);
          // A worker started (or restarted) in the middle of an order answers its tokens too.
          if (Object.keys(this.challenges).length > 0)
            w.send({ t: 'challenges', id: 0, challenges: this.challenges } satisfies ToWorker);
          resolve({ httpPort: m.httpPort, httpsPort: m.httpsPort });
        } else if (m.t === 'failed') {
          reject(new Error(m.message));
        } else if (m.t === 'certsSet') {
          this.settle(w, m.id, true);
        } else if (m.t === 'applied' || m.t === 'stats') {
          this.settle(w, m.id, m.t === 'applied' ? m.drained : m.stats);
        } else if (m.t === 'challenged') {
          this.settle(w, m.id, true);
        }
      };
      w.on('message', onMessage);
      w.once('online', () => {
        sent = this.table;
        sentCerts = this.certs;
        w.send({ t: 'init', opts, table: sent, certs: sentCerts } satisfies ToWorker);
      });
      w.once('exit', (code, signal) => {
        const known = this.workers.delete(w);
        // A dead worker's connections are gone: it no longer holds up any drain.
        for (const [id] of this.waiters) this.settle(w, id, true);
        if (!known)
          return reject(new Error(`router worker exited during start (${signal ?? code})`));
        if (this.closing) return;
        this.onLog(`router worker ${w.process.pid} exited (${signal ?? code}); starting another`);
        setTimeout(() => {
          if (!this.closing)
            this.spawn({ ...this.opts, httpPort: this.httpPort, httpsPort: this.httpsPort }).catch(
              (e: Error) => this.onLog(e.message),
            );
        }, 500);
      });
    });
  }

  private broadcast(make: (id: number) => ToWorker): Promise<unknown[]> {
    const id = this.nextId++;
    const need = new Set(this.workers);
    return new Promise((resolve) => {
      if (need.size === 0) return resolve([]);
      this.waiters.set(id, { need, got: [], resolve });
      for (const w of need) w.send(make(id));
    });
  }

  private settle(w: Worker, id: number, value: unknown): void {
    const waiter = this.waiters.get(id);
    if (!waiter || !waiter.need.delete(w)) return;
    waiter.got.push(value);
    if (waiter.need.size === 0) {
      this.waiters.delete(id);
      waiter.resolve(waiter.got);
    }
  }

  async apply(table: RouteTable, drainTimeoutMs: number): Promise<boolean> {
    this.table = table;
    const got = await this.broadcast((id) => ({ t: 'apply', id, table, drainTimeoutMs }));
    return got.every((d) => d === true);
  }

  async setCerts(certs: RouterCerts): Promise<void> {
    this.certs = certs;
    await this.broadcast((id) => ({ t: 'certs', id, certs }));
  }

  async setChallenges(challenges: Challenges): Promise<void> {
    this.challenges = challenges;
    await this.broadcast((id) => ({ t: 'challenges', id, challenges }));
  }

  async stats(): Promise<WorkerStats[]> {
    const got = await this.broadcast((id) => ({ t: 'stats', id }));
    return got.filter((s): s is WorkerStats => typeof s === 'object' && s !== null);
  }

  reopenLogs(): void {
    for (const w of this.workers) w.send({ t: 'reopen' } satisfies ToWorker);
  }

  async close(drainTimeoutMs: number): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.workers].map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill('SIGKILL'), drainTimeoutMs + 2000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            w.send({ t: 'close', drainTimeoutMs } satisfies ToWorker);
          }),
      ),
    );
  }
}

/** The worker side: one data plane driven by the primary's messages. */
export function runWorker(): void {
  let plane: WorkerPlane | undefined;
  const send = (m: FromWorker): void => {
    process.send?.(m);
  };
  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'init':
        WorkerPlane.start(m.opts).then(
          async (p) => {
            plane = p;
            p.setCerts(m.certs);
            await p.apply(m.table);
            send({ t: 'ready', httpPort: p.httpPort, httpsPort: p.httpsPort });
          },
          (err: Error) => {
            send({ t: 'failed', message: err.message });
            process.exit(1);
          },
        );
        break;
      case 'apply':
        plane
          ?.apply(m.table, m.drainTimeoutMs)
          .then((drained) => send({ t: 'applied', id: m.id, drained }));
        break;
      case 'certs':
        plane?.setCerts(m.certs);
        if (m.id !== 0) send({ t: 'certsSet', id: m.id });
        break;
      case 'stats':
        if (plane) send({ t: 'stats', id: m.id, stats: { pid: process.pid, ...plane.stats() } });
        break;
      case 'challenges':
        plane?.setChallenges(parseChallenges(m.challenges));
        if (m.id !== 0) send({ t: 'challenged', id: m.id });
        break;
      case 'reopen':
        plane?.reopenLogs();
        break;
      case 'close':
        (plane?.close(m.drainTimeoutMs) ?? Promise.resolve()).finally(() => process.exit(0));
        break;
    }
  });
  // The primary is the supervisor: if it is gone, so is the reason to serve.
  process.on('disconnect', () => process.exit(0));
}

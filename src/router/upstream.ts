// One upstream (an app's web process) as seen by one data plane: its keep-alive pool, how
// many exchanges are in flight on it, and the drain that a switch waits for.
import { Pool } from 'undici';
import type { Backend } from './table.ts';

export interface UpstreamLimits {
  /** Time to the upstream's response headers; past it the client gets a 504. */
  upstreamTimeoutMs: number;
  /** Longest silence inside an upstream response body (SSE apps send heartbeats). */
  upstreamBodyTimeoutMs: number;
  connectTimeoutMs: number;
}

export class Upstream {
  readonly key: string;
  readonly backend: Backend;
  readonly pool: Pool;
  /** Exchanges started and not yet finished: plain requests plus upgraded connections. */
  inflight = 0;
  upgraded = 0;
  requests = 0;
  private retired = false;
  private idleWaiters: (() => void)[] = [];

  constructor(backend: Backend, limits: UpstreamLimits) {
    this.backend = backend;
    this.key = `${backend.host}:${backend.port}`;
    this.pool = new Pool(`http://${this.key}`, {
      // One request per connection at a time: pipelining would let one slow response hold
      // up others, and the router's own keep-alive already amortises the connects.
      pipelining: 1,
      connections: 256,
      headersTimeout: limits.upstreamTimeoutMs,
      bodyTimeout: limits.upstreamBodyTimeoutMs,
      connectTimeout: limits.connectTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  acquire(): void {
    this.inflight++;
    this.requests++;
  }

  release(): void {
    if (--this.inflight === 0 && this.retired) this.settle();
  }

  get isRetired(): boolean {
    return this.retired;
  }

  /**
   * Take this upstream out of service. No new exchange starts on it (it is no longer in any
   * table); resolves true once the in-flight ones finished, false if `timeoutMs` passed
   * first. Either way its pooled connections are then closed.
   */
  retire(timeoutMs: number): Promise<boolean> {
    this.retired = true;
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (drained: boolean): void => {
        if (timer) clearTimeout(timer);
        // Idle keep-alive sockets would otherwise hold the old process's connections open.
        if (drained) this.pool.close().catch(() => {});
        else this.pool.destroy().catch(() => {});
        resolve(drained);
      };
      if (this.inflight === 0) return done(true);
      this.idleWaiters.push(() => done(true));
      timer = setTimeout(() => {
        this.idleWaiters = [];
        done(false);
      }, timeoutMs);
    });
  }

  private settle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/**
 * An app's live upstreams and how the next one is picked: least outstanding requests, with
 * a rotating start so equal loads share round-robin instead of piling on the first.
 */
export class UpstreamSet {
  readonly list: readonly Upstream[];
  private next = 0;

  constructor(list: readonly Upstream[]) {
    this.list = list;
  }

  pick(exclude?: Upstream): Upstream | undefined {
    const n = this.list.length;
    if (n === 0) return undefined;
    if (n === 1) {
      const only = this.list[0]!;
      return only === exclude ? undefined : only;
    }
    const start = this.next++ % n;
    let best: Upstream | undefined;
    for (let i = 0; i < n; i++) {
      const u = this.list[(start + i) % n]!;
      if (u === exclude) continue;
      if (best === undefined || u.inflight < best.inflight) best = u;
    }
    return best;
  }
}

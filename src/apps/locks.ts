// Per-app deploy lock: pushes, config changes and rollbacks of one app run one at a time,
// different apps in parallel. The daemon is the only process that takes locks, so an
// in-memory queue is the lock; the `locks` row makes the holder visible (apps:info) and is
// freed at startup, when no holder from a previous boot can still be alive.
import { randomUUID } from 'node:crypto';
import { Conflict } from '../errors/index.ts';
import type { Db } from './db.ts';
import type { AppName } from './name.ts';

export type Unlock = () => void;

export class Locks {
  readonly db: Db;
  readonly boot = randomUUID();
  private readonly tails = new Map<string, Promise<void>>();

  constructor(db: Db) {
    this.db = db;
  }

  /** Frees locks held by earlier boots of the daemon; returns the apps whose lock was stale. */
  freeStale(): string[] {
    const rows = this.db
      .prepare('DELETE FROM locks WHERE boot != ? RETURNING app')
      .all(this.boot) as { app: string }[];
    return rows.map((r) => r.app);
  }

  holder(app: AppName): { holder: string; acquiredAt: string } | null {
    const r = this.db.prepare('SELECT holder, acquired_at FROM locks WHERE app = ?').get(app) as
      { holder: string; acquired_at: string } | undefined;
    return r === undefined ? null : { holder: r.holder, acquiredAt: r.acquired_at };
  }

  /**
   * Waits for the app's lock (FIFO), at most timeoutMs. `onWait` is called once if the lock is
   * busy, with the current holder, so a pusher sees why nothing happens. The returned unlock
   * is idempotent; callers release it in `finally`.
   */
  async acquire(
    app: AppName,
    holder: string,
    opts: { timeoutMs?: number; onWait?: (holder: string) => void; signal?: AbortSignal } = {},
  ): Promise<Unlock> {
    const prev = this.tails.get(app) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(app, tail);
    let busy = false;
    const h = this.holder(app);
    if (h !== null) {
      busy = true;
      opts.onWait?.(h.holder);
    }
    const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
    let timer: NodeJS.Timeout | undefined;
    const gotIt = await Promise.race([
      prev.then(() => true),
      new Promise<false>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
      new Promise<false>((r) =>
        opts.signal?.addEventListener('abort', () => r(false), { once: true }),
      ),
    ]);
    clearTimeout(timer);
    if (!gotIt) {
      // Leave the queue without blocking those behind: pass through once our turn comes.
      void prev.then(() => release());
      if (this.tails.get(app) === tail)
        void tail.then(() => {
          if (this.tails.get(app) === tail) this.tails.delete(app);
        });
      throw new Conflict(
        opts.signal?.aborted === true
          ? `gave up waiting for the lock of "${app}"`
          : `app "${app}" is busy${busy ? ' (another deploy is running)' : ''}; try again later`,
        { app },
      );
    }
    this.db
      .prepare('INSERT OR REPLACE INTO locks (app, holder, boot, acquired_at) VALUES (?, ?, ?, ?)')
      .run(app, holder, this.boot, new Date().toISOString());
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // Work that ends after the daemon closed its state leaves the row: the next boot frees
      // every lock of an older boot anyway (recovery).
      if (this.db.isOpen)
        this.db.prepare('DELETE FROM locks WHERE app = ? AND boot = ?').run(app, this.boot);
      if (this.tails.get(app) === tail) this.tails.delete(app);
      release();
    };
  }
}

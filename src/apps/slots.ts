// The restart history of each process slot (app, type, n of a release), so `ps` shows the
// same restarts, crash streak and last exit after the daemon restarted while the containers
// kept running. Like Heroku's, the history belongs to the slot as it runs now: a fresh start
// (a deploy, ps:restart, scaling up, ps:start) begins with none, and a slot retired (scaled
// away, ps:stop, replaced by a deploy) takes its row with it.
//
// A row is keyed by the slot's current container, not by (app, type, n): during a deploy or
// a rolling restart the old and the new process of the same slot run side by side, and each
// keeps its own history until the old one is retired. Writes happen per crash and per
// restart, never per request.
import { tx, type Db } from './db.ts';
import type { AppName } from './name.ts';

export interface SlotKey {
  app: AppName;
  type: string;
  n: number;
  version: number;
}

export interface SlotHistory {
  /** Times the slot was started again since its fresh start. */
  restarts: number;
  /** Crashes in a row without staying up long (the restart policy's backoff). */
  crashes: number;
  lastExit: string | null;
}

const NONE: SlotHistory = { restarts: 0, crashes: 0, lastExit: null };

interface Row {
  container: string;
  restarts: number;
  crashes: number;
  last_exit: string | null;
}

const history = (r: Row): SlotHistory => ({
  restarts: r.restarts,
  crashes: r.crashes,
  lastExit: r.last_exit,
});

export class ProcessSlots {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  /** A slot started fresh in `container`: no history. */
  start(key: SlotKey, container: string): SlotHistory {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO process_slots (container, app, type, n, version, restarts, crashes, last_exit) VALUES (?, ?, ?, ?, ?, 0, 0, NULL)',
      )
      .run(container, key.app, key.type, key.n, key.version);
    return { ...NONE };
  }

  /**
   * The history of the slot now run by `container`: its own row when it has one (a container
   * adopted at daemon start), else the newest row of the same slot, whose container is gone —
   * the slot was restarted while the daemon was away, or its restart was not recorded before
   * the daemon died, so that counts as one more restart (Kubernetes counts a container a
   * kubelet starts again after a node reboot the same way). A slot without rows starts fresh.
   * Only for slots no other live process holds: adoption and converge guarantee that.
   */
  resume(key: SlotKey, container: string): SlotHistory {
    const own = this.db
      .prepare(
        'SELECT container, restarts, crashes, last_exit FROM process_slots WHERE container = ?',
      )
      .get(container) as Row | undefined;
    if (own !== undefined) return history(own);
    const prev = this.db
      .prepare(
        'SELECT container, restarts, crashes, last_exit FROM process_slots WHERE app = ? AND type = ? AND n = ? AND version = ? ORDER BY rowid DESC LIMIT 1',
      )
      .get(key.app, key.type, key.n, key.version) as Row | undefined;
    if (prev === undefined) return this.start(key, container);
    this.db
      .prepare(
        'UPDATE process_slots SET container = ?, restarts = restarts + 1 WHERE container = ?',
      )
      .run(container, prev.container);
    return { ...history(prev), restarts: prev.restarts + 1 };
  }

  /** The slot's process crashed: its streak and how it ended. */
  crashed(container: string, crashes: number, lastExit: string): void {
    this.db
      .prepare('UPDATE process_slots SET crashes = ?, last_exit = ? WHERE container = ?')
      .run(crashes, lastExit, container);
  }

  /** The slot runs again, in a new container. */
  restarted(from: string, to: string, restarts: number): void {
    this.db
      .prepare('UPDATE process_slots SET container = ?, restarts = ? WHERE container = ?')
      .run(to, restarts, from);
  }

  /** The slot's process was retired: its history goes with it. */
  forget(container: string): void {
    this.db.prepare('DELETE FROM process_slots WHERE container = ?').run(container);
  }

  /** Drops the rows of every container not in `live` (at daemon start, once every slot is filled). */
  keepOnly(live: ReadonlySet<string>): number {
    return tx(this.db, () => {
      const rows = this.db.prepare('SELECT container FROM process_slots').all() as {
        container: string;
      }[];
      const del = this.db.prepare('DELETE FROM process_slots WHERE container = ?');
      const gone = rows.filter((r) => !live.has(r.container));
      for (const r of gone) del.run(r.container);
      return gone.length;
    });
  }

  /** The row of one container, if it has one. */
  get(container: string): (SlotKey & SlotHistory) | null {
    const r = this.db
      .prepare(
        'SELECT app, type, n, version, restarts, crashes, last_exit FROM process_slots WHERE container = ?',
      )
      .get(container) as
      | (Omit<Row, 'container'> & { app: string; type: string; n: number; version: number })
      | undefined;
    return r === undefined
      ? null
      : {
          app: r.app as AppName,
          type: r.type,
          n: r.n,
          version: r.version,
          ...history({ ...r, container }),
        };
  }
}

// Apps, their config, domains and formation: the rows a user edits. Releases and builds,
// the pipeline's records, live in releases.ts and builds.ts.
import { AppExists, AppNotFound, Conflict } from '../errors/index.ts';
import { tx, type Db } from './db.ts';
import type { AppName } from './name.ts';
import type { ConfigKey, Domain, ProcessType } from './validate.ts';

export interface App {
  name: AppName;
  createdAt: string;
  liveRelease: number | null;
  /** Set by ps:stop: no process runs until ps:start or the next deploy. */
  stopped: boolean;
}

/**
 * cgroup limits and opt-ins of a process type; an absent field takes the daemon's default
 * (memory and pids: its --default-memory/--default-pids; cpus: unlimited; netRaw: off).
 */
export interface Resources {
  memoryBytes?: number;
  cpus?: number;
  pids?: number;
  /** CAP_NET_RAW (raw sockets: ping, traceroute) for the app's containers. */
  netRaw?: boolean;
}

interface AppRow {
  name: string;
  created_at: string;
  destroyed_at: string | null;
  live_release: number | null;
  stopped: number;
}

function toApp(r: AppRow): App {
  return {
    name: r.name as AppName,
    createdAt: r.created_at,
    liveRelease: r.live_release,
    stopped: r.stopped === 1,
  };
}

export class AppStore {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  private row(name: AppName): AppRow | undefined {
    return this.db.prepare('SELECT * FROM apps WHERE name = ?').get(name) as AppRow | undefined;
  }

  /** Creates the app, or revives a destroyed name (an explicit create is the only way back). */
  create(name: AppName): App {
    return tx(this.db, () => {
      const r = this.row(name);
      if (r !== undefined && r.destroyed_at === null)
        throw new AppExists(`app "${name}" already exists`, { app: name });
      const now = new Date().toISOString();
      if (r === undefined)
        this.db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?)').run(name, now);
      else
        this.db
          .prepare(
            'UPDATE apps SET created_at = ?, destroyed_at = NULL, live_release = NULL, stopped = 0 WHERE name = ?',
          )
          .run(now, name);
      this.db
        .prepare('INSERT OR REPLACE INTO formation (app, type, quantity) VALUES (?, ?, 1)')
        .run(name, 'web');
      return toApp(this.row(name)!);
    });
  }

  /**
   * The app a push targets: created on its first push (ARCHITECTURE.md's git contract), but a
   * destroyed app stays destroyed — a stale remote gets an error, not a fresh empty app.
   */
  ensureForPush(name: AppName): { app: App; created: boolean } {
    const r = this.row(name);
    if (r === undefined) return { app: this.create(name), created: true };
    if (r.destroyed_at !== null) {
      throw new AppNotFound(
        `app "${name}" was destroyed; run "paas apps:create ${name}" to use the name again`,
        { app: name, destroyed: true },
      );
    }
    return { app: toApp(r), created: false };
  }

  get(name: AppName): App {
    const r = this.row(name);
    if (r === undefined || r.destroyed_at !== null)
      throw new AppNotFound(`app "${name}" does not exist`, { app: name });
    return toApp(r);
  }

  exists(name: AppName): boolean {
    const r = this.row(name);
    return r !== undefined && r.destroyed_at === null;
  }

  list(): App[] {
    return (
      this.db
        .prepare('SELECT * FROM apps WHERE destroyed_at IS NULL ORDER BY name')
        .all() as unknown as AppRow[]
    ).map(toApp);
  }

  /** Drops everything the app owns but its tombstone, in one transaction. */
  destroy(name: AppName): void {
    tx(this.db, () => {
      this.get(name);
      for (const t of [
        'config',
        'builds',
        'releases',
        'deploys',
        'formation',
        'resources',
        'mounts',
        'service_links',
      ])
        this.db.prepare(`DELETE FROM ${t} WHERE app = ?`).run(name);
      this.db.prepare('DELETE FROM domains WHERE app = ?').run(name);
      // Its log drains go with it: a later app of the same name must not ship to them.
      this.db.prepare('DELETE FROM drains WHERE app = ?').run(name);
      this.db
        .prepare('UPDATE apps SET destroyed_at = ?, live_release = NULL WHERE name = ?')
        .run(new Date().toISOString(), name);
    });
  }

  setLiveRelease(name: AppName, version: number | null): void {
    this.db.prepare('UPDATE apps SET live_release = ? WHERE name = ?').run(version, name);
  }

  config(name: AppName): Record<string, string> {
    const rows = this.db
      .prepare('SELECT key, value FROM config WHERE app = ? ORDER BY key')
      .all(name) as { key: string; value: string }[];
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  /** Replaces the whole config; callers run it in the transaction that records the release. */
  replaceConfig(name: AppName, vars: Readonly<Record<string, string>>): void {
    this.db.prepare('DELETE FROM config WHERE app = ?').run(name);
    const ins = this.db.prepare('INSERT INTO config (app, key, value) VALUES (?, ?, ?)');
    for (const [k, v] of Object.entries(vars)) ins.run(name, k, v);
  }

  static applyConfig(
    current: Readonly<Record<string, string>>,
    set: ReadonlyMap<ConfigKey, string>,
    unset: readonly ConfigKey[],
  ): Record<string, string> {
    const next = { ...current };
    for (const [k, v] of set) next[k] = v;
    for (const k of unset) delete next[k];
    return next;
  }

  domains(name: AppName): Domain[] {
    return (
      this.db.prepare('SELECT domain FROM domains WHERE app = ? ORDER BY domain').all(name) as {
        domain: string;
      }[]
    ).map((r) => r.domain as Domain);
  }

  addDomain(name: AppName, domain: Domain): void {
    tx(this.db, () => {
      this.get(name);
      const owner = this.db.prepare('SELECT app FROM domains WHERE domain = ?').get(domain) as
        { app: string } | undefined;
      if (owner !== undefined && owner.app !== name)
        throw new Conflict(`domain "${domain}" belongs to app "${owner.app}"`, {
          domain,
          app: owner.app,
        });
      this.db
        .prepare('INSERT OR IGNORE INTO domains (domain, app) VALUES (?, ?)')
        .run(domain, name);
    });
  }

  removeDomain(name: AppName, domain: Domain): void {
    this.get(name);
    const r = this.db.prepare('DELETE FROM domains WHERE app = ? AND domain = ?').run(name, domain);
    if (r.changes === 0)
      throw new Conflict(`domain "${domain}" is not attached to app "${name}"`, {
        domain,
        app: name,
      });
  }

  /** Desired process counts per type (Heroku's formation); the processes issue converges on it. */
  formation(name: AppName): Record<string, number> {
    const rows = this.db
      .prepare('SELECT type, quantity FROM formation WHERE app = ?')
      .all(name) as { type: string; quantity: number }[];
    return Object.fromEntries(rows.map((r) => [r.type, r.quantity]));
  }

  setFormation(name: AppName, type: ProcessType, quantity: number): void {
    this.db
      .prepare('INSERT OR REPLACE INTO formation (app, type, quantity) VALUES (?, ?, ?)')
      .run(name, type, quantity);
  }

  setStopped(name: AppName, stopped: boolean): void {
    this.db.prepare('UPDATE apps SET stopped = ? WHERE name = ?').run(stopped ? 1 : 0, name);
  }

  /** Limits per type as set; '*' holds the app-wide default. */
  resources(name: AppName): Record<string, Resources> {
    const rows = this.db
      .prepare(
        'SELECT type, memory_bytes, cpus, pids, net_raw FROM resources WHERE app = ? ORDER BY type',
      )
      .all(name) as {
      type: string;
      memory_bytes: number | null;
      cpus: number | null;
      pids: number | null;
      net_raw: number | null;
    }[];
    return Object.fromEntries(
      rows.map((r) => [
        r.type,
        {
          ...(r.memory_bytes === null ? {} : { memoryBytes: r.memory_bytes }),
          ...(r.cpus === null ? {} : { cpus: r.cpus }),
          ...(r.pids === null ? {} : { pids: r.pids }),
          ...(r.net_raw === null ? {} : { netRaw: r.net_raw === 1 }),
        },
      ]),
    );
  }

  /** The limits a process of `type` starts with: its own row over the app-wide one. */
  resourcesFor(name: AppName, type: string): Resources {
    const all = this.resources(name);
    return { ...all['*'], ...all[type] };
  }

  /** Merges the given limits into the type's row ('*' for every type). */
  setResources(name: AppName, type: ProcessType | '*', res: Resources): void {
    tx(this.db, () => {
      this.get(name);
      const cur = this.resources(name)[type] ?? {};
      const next = { ...cur, ...res };
      this.db
        .prepare(
          'INSERT OR REPLACE INTO resources (app, type, memory_bytes, cpus, pids, net_raw) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(
          name,
          type,
          next.memoryBytes ?? null,
          next.cpus ?? null,
          next.pids ?? null,
          next.netRaw === undefined ? null : next.netRaw ? 1 : 0,
        );
    });
  }
}

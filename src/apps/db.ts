// The daemon's SQLite state: one file in the data dir, WAL so readers never block the writer,
// and numbered migrations applied once each inside a transaction.
import { DatabaseSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = DatabaseSync;

/** Append-only: a shipped migration is never edited, a change is a new entry. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE apps (
     name TEXT PRIMARY KEY,
     created_at TEXT NOT NULL,
     -- a destroyed app keeps a tombstone so a stale git remote cannot silently resurrect it
     destroyed_at TEXT,
     live_release INTEGER
   );
   CREATE TABLE config (app TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (app, key));
   CREATE TABLE builds (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     app TEXT NOT NULL,
     git_sha TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
     started_at TEXT NOT NULL,
     finished_at TEXT,
     image TEXT,
     error TEXT
   );
   CREATE INDEX builds_app ON builds (app, id);
   CREATE TABLE releases (
     app TEXT NOT NULL,
     version INTEGER NOT NULL,
     image TEXT NOT NULL,
     image_digest TEXT NOT NULL,
     config TEXT NOT NULL,
     processes TEXT NOT NULL,
     git_sha TEXT NOT NULL,
     build_id INTEGER,
     description TEXT NOT NULL,
     app_json TEXT NOT NULL DEFAULT '{}',
     created_at TEXT NOT NULL,
     PRIMARY KEY (app, version)
   );
   -- what happened when a release was deployed; kept apart so release rows stay immutable
   CREATE TABLE deploys (
     app TEXT NOT NULL,
     version INTEGER NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('deploying', 'succeeded', 'failed')),
     started_at TEXT NOT NULL,
     finished_at TEXT,
     error TEXT,
     PRIMARY KEY (app, version)
   );
   CREATE TABLE domains (domain TEXT PRIMARY KEY, app TEXT NOT NULL);
   CREATE TABLE formation (app TEXT NOT NULL, type TEXT NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (app, type));
   CREATE TABLE locks (app TEXT PRIMARY KEY, holder TEXT NOT NULL, boot TEXT NOT NULL, acquired_at TEXT NOT NULL);`,
  // What built a release's image: a buildpack's name, or 'dockerfile' for the app's own.
  // NULL for releases made before it was recorded.
  `ALTER TABLE releases ADD COLUMN buildpack TEXT;`,
  // Resource limits per process type ('*': every type without its own row), applied when a
  // process starts; and ps:stop's "keep this app down" flag, which recovery honours.
  `CREATE TABLE resources (app TEXT NOT NULL, type TEXT NOT NULL, memory_bytes INTEGER, cpus REAL, PRIMARY KEY (app, type));
   ALTER TABLE apps ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;`,
  // Each process slot's restart history (slots.ts), so it outlives a daemon restart: one row
  // per slot as it runs now, found again by its current container.
  `CREATE TABLE process_slots (
     container TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     type TEXT NOT NULL,
     n INTEGER NOT NULL,
     version INTEGER NOT NULL,
     restarts INTEGER NOT NULL,
     crashes INTEGER NOT NULL,
     last_exit TEXT
   );
   CREATE INDEX process_slots_slot ON process_slots (app, type, n, version);`,
  // resources:set --pids and --cap-net-raw: NULL keeps the daemon's default (its flags).
  `ALTER TABLE resources ADD COLUMN pids INTEGER;
   ALTER TABLE resources ADD COLUMN net_raw INTEGER;`,
  // SSH keys that may push (src/ssh): apps is a JSON array of app names, [] for every app.
  `CREATE TABLE ssh_keys (
     name TEXT PRIMARY KEY,
     type TEXT NOT NULL,
     bits INTEGER NOT NULL,
     fingerprint TEXT NOT NULL UNIQUE,
     public_key TEXT NOT NULL,
     comment TEXT NOT NULL,
     apps TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // Log drains (src/logs/drains.ts): where an app's lines are shipped. The URL may carry a
  // password (https://user:pass@…), which is why only the id and a redacted URL are shown.
  `CREATE TABLE drains (
     id TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     url TEXT NOT NULL,
     created_at TEXT NOT NULL,
     UNIQUE (app, url)
   );`,
  // storage:mount (src/storage): what each app has mounted where. Part of the app, not of a
  // release, so redeploys and rollbacks keep it; the data itself lives in the data dir.
  `CREATE TABLE mounts (
     app TEXT NOT NULL,
     target TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('volume', 'host')),
     source TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (app, target)
   );`,
  // Backing services (src/services) and the apps linked to each. A service's password is
  // kept here (the data dir is root's, 0700) to build the URL its links set.
  `CREATE TABLE services (
     name TEXT PRIMARY KEY,
     type TEXT NOT NULL CHECK (type IN ('postgres', 'redis')),
     image TEXT NOT NULL,
     password TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE service_links (
     service TEXT NOT NULL,
     app TEXT NOT NULL,
     alias TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (service, app)
   );`,
];

export function openDb(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new DatabaseSync(join(dataDir, 'paas.db'));
  db.exec(
    'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;',
  );
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
  );
  // Every migration not recorded yet, in order (not just those past the highest recorded).
  const done = new Set(
    (db.prepare('SELECT version FROM migrations').all() as { version: number }[]).map(
      (r) => r.version,
    ),
  );
  for (let v = 1; v <= MIGRATIONS.length; v++) {
    if (done.has(v)) continue;
    tx(db, () => {
      db.exec(MIGRATIONS[v - 1]!);
      db.prepare('INSERT INTO migrations (version, applied_at) VALUES (?, ?)').run(
        v,
        new Date().toISOString(),
      );
    });
  }
}

/** Runs fn in one IMMEDIATE transaction: all of it lands or none of it (kill -9 included). */
export function tx<T>(db: Db, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const out = fn();
    db.exec('COMMIT');
    return out;
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}

// Build records: one per push of a deploying branch, running → succeeded | failed.
import type { BuildInfo } from '../api/index.ts';
import type { Db } from './db.ts';
import type { AppName } from './name.ts';

/** A build as the API shows it (src/api: one shape), with the app it belongs to. */
export type Build = BuildInfo & { app: AppName };

interface Row {
  id: number;
  app: string;
  git_sha: string;
  status: Build['status'];
  started_at: string;
  finished_at: string | null;
  image: string | null;
  error: string | null;
}

function toBuild(r: Row): Build {
  return {
    id: r.id,
    app: r.app as AppName,
    gitSha: r.git_sha,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    image: r.image,
    error: r.error,
  };
}

export class Builds {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  start(app: AppName, gitSha: string): Build {
    const r = this.db
      .prepare(
        "INSERT INTO builds (app, git_sha, status, started_at) VALUES (?, ?, 'running', ?) RETURNING *",
      )
      .get(app, gitSha, new Date().toISOString()) as unknown as Row;
    return toBuild(r);
  }

  succeed(id: number, image: string): void {
    this.db
      .prepare("UPDATE builds SET status = 'succeeded', finished_at = ?, image = ? WHERE id = ?")
      .run(new Date().toISOString(), image, id);
  }

  fail(id: number, error: string): void {
    this.db
      .prepare(
        "UPDATE builds SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
      )
      .run(new Date().toISOString(), error.slice(0, 2000), id);
  }

  list(app: AppName, limit = 50): Build[] {
    return (
      this.db
        .prepare('SELECT * FROM builds WHERE app = ? ORDER BY id DESC LIMIT ?')
        .all(app, limit) as unknown as Row[]
    ).map(toBuild);
  }

  get(id: number): Build | null {
    const r = this.db.prepare('SELECT * FROM builds WHERE id = ?').get(id) as Row | undefined;
    return r === undefined ? null : toBuild(r);
  }

  /** Startup recovery: builds the daemon was running when it died can never finish. */
  failInterrupted(): Build[] {
    const rows = this.db
      .prepare(
        "UPDATE builds SET status = 'failed', finished_at = ?, error = 'the daemon stopped during the build' WHERE status = 'running' RETURNING *",
      )
      .all(new Date().toISOString()) as unknown as Row[];
    return rows.map(toBuild);
  }
}

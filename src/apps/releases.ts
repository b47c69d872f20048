// Immutable releases: vN = image + config + process types + buildpack + git sha + build. A row
// is written once and never updated; what happened when it was deployed is a separate
// `deploys` row.
import { ReleaseNotFound } from '../errors/index.ts';
import { tx, type Db } from './db.ts';
import type { AppName } from './name.ts';
import type { AppStore } from './store.ts';

/** A process type's command: argv, exec'd as is (a Procfile line is wrapped in `/bin/sh -c`). */
export type Processes = Readonly<Record<string, readonly string[]>>;

export type DeployStatus = 'deploying' | 'succeeded' | 'failed';

export interface Release {
  app: AppName;
  version: number;
  image: string;
  imageDigest: string;
  config: Readonly<Record<string, string>>;
  processes: Processes;
  gitSha: string;
  buildId: number | null;
  /** What built the image: a buildpack's name, 'dockerfile', or null when not recorded. */
  buildpack: string | null;
  description: string;
  /** The parts of app.json the platform acts on (scripts, formation, healthchecks…). */
  appJson: AppJson;
  createdAt: string;
  deploy: { status: DeployStatus; error: string | null } | null;
}

export interface AppJson {
  /** `scripts.dokku.predeploy`: before the switch, on every deploy; its failure aborts it. */
  predeploy?: string;
  /** `scripts.dokku.postdeploy`: after the switch, on every deploy; a failure is only logged. */
  postdeploy?: string;
  /** Heroku's `scripts.postdeploy`: after the switch of the app's first deploy only. */
  firstPostdeploy?: string;
  /** `formation`: the scale the app starts with (its first deploy); ps:scale owns it after. */
  formation?: Readonly<Record<string, number>>;
  healthchecks?: unknown;
  /** Seconds between SIGTERM and SIGKILL when a process is retired (`stop_grace_period`). */
  stopGraceSeconds?: number;
}

export interface NewRelease {
  image: string;
  imageDigest: string;
  processes: Processes;
  gitSha: string;
  buildId: number | null;
  buildpack?: string | null;
  description: string;
  appJson?: AppJson;
}

interface Row {
  app: string;
  version: number;
  image: string;
  image_digest: string;
  config: string;
  processes: string;
  git_sha: string;
  build_id: number | null;
  buildpack: string | null;
  description: string;
  app_json: string;
  created_at: string;
  status: DeployStatus | null;
  error: string | null;
}

const SELECT = `SELECT r.*, d.status, d.error FROM releases r LEFT JOIN deploys d ON d.app = r.app AND d.version = r.version`;

function toRelease(r: Row): Release {
  return {
    app: r.app as AppName,
    version: r.version,
    image: r.image,
    imageDigest: r.image_digest,
    config: JSON.parse(r.config) as Record<string, string>,
    processes: JSON.parse(r.processes) as Processes,
    gitSha: r.git_sha,
    buildId: r.build_id,
    buildpack: r.buildpack,
    description: r.description,
    appJson: JSON.parse(r.app_json) as AppJson,
    createdAt: r.created_at,
    deploy: r.status === null ? null : { status: r.status, error: r.error },
  };
}

/** `v3` or `3` → 3. */
export function parseVersion(raw: unknown): number {
  const m = typeof raw === 'string' ? /^v?([1-9][0-9]{0,8})$/.exec(raw) : null;
  if (m === null)
    throw new ReleaseNotFound(`"${String(raw).slice(0, 20)}" is not a release (use vN)`, {
      release: String(raw).slice(0, 20),
    });
  return Number(m[1]);
}

export class Releases {
  readonly db: Db;
  readonly apps: AppStore;
  constructor(db: Db, apps: AppStore) {
    this.db = db;
    this.apps = apps;
  }

  list(app: AppName, limit = 100): Release[] {
    return (
      this.db
        .prepare(`${SELECT} WHERE r.app = ? ORDER BY r.version DESC LIMIT ?`)
        .all(app, limit) as unknown as Row[]
    ).map(toRelease);
  }

  get(app: AppName, version: number): Release {
    const r = this.db.prepare(`${SELECT} WHERE r.app = ? AND r.version = ?`).get(app, version) as
      Row | undefined;
    if (r === undefined)
      throw new ReleaseNotFound(`app "${app}" has no release v${version}`, {
        app,
        release: `v${version}`,
      });
    return toRelease(r);
  }

  latest(app: AppName): Release | null {
    const r = this.db
      .prepare(`${SELECT} WHERE r.app = ? ORDER BY r.version DESC LIMIT 1`)
      .get(app) as Row | undefined;
    return r === undefined ? null : toRelease(r);
  }

  /**
   * Records vN+1 with `config` as its config vars, and makes `config` the app's config, in one
   * transaction (a config change and its release land together or not at all).
   */
  create(app: AppName, input: NewRelease, config: Readonly<Record<string, string>>): Release {
    const version = tx(this.db, () => {
      this.apps.get(app);
      const max = this.db
        .prepare('SELECT MAX(version) AS v FROM releases WHERE app = ?')
        .get(app) as { v: number | null };
      const v = (max.v ?? 0) + 1;
      this.db
        .prepare(
          `INSERT INTO releases (app, version, image, image_digest, config, processes, git_sha, build_id, buildpack, description, app_json, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          app,
          v,
          input.image,
          input.imageDigest,
          JSON.stringify(config),
          JSON.stringify(input.processes),
          input.gitSha,
          input.buildId,
          input.buildpack ?? null,
          input.description,
          JSON.stringify(input.appJson ?? {}),
          new Date().toISOString(),
        );
      this.apps.replaceConfig(app, config);
      return v;
    });
    return this.get(app, version);
  }

  markDeploying(app: AppName, version: number): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO deploys (app, version, status, started_at) VALUES (?, ?, ?, ?)',
      )
      .run(app, version, 'deploying', new Date().toISOString());
  }

  /** Records the outcome; a success also makes it the live release, in one transaction. */
  finishDeploy(
    app: AppName,
    version: number,
    outcome: { ok: true } | { ok: false; error: string },
  ): void {
    tx(this.db, () => {
      this.db
        .prepare(
          'UPDATE deploys SET status = ?, finished_at = ?, error = ? WHERE app = ? AND version = ?',
        )
        .run(
          outcome.ok ? 'succeeded' : 'failed',
          new Date().toISOString(),
          outcome.ok ? null : outcome.error,
          app,
          version,
        );
      if (outcome.ok) this.apps.setLiveRelease(app, version);
    });
  }

  /** Startup recovery: a deploy the daemon died in is failed; the live pointer never moved. */
  failInterrupted(): number {
    return Number(
      this.db
        .prepare(
          `UPDATE deploys SET status = 'failed', finished_at = ?, error = 'the daemon stopped during the deploy' WHERE status = 'deploying'`,
        )
        .run(new Date().toISOString()).changes,
    );
  }
}

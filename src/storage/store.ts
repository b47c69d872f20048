// Each app's mounts (the `mounts` table) and where a named volume lives on the host:
// `<data-dir>/volumes/<app>/<volume>`. A volume belongs to its app (a second app mounting the
// same name gets its own directory) and outlives releases, restarts and apps:destroy, unless
// that is asked to purge it.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AppName, Db } from '../apps/index.ts';
import { Conflict, NotFound } from '../errors/index.ts';
import type { Volume } from '../runtime/index.ts';
import type { ContainerPath, MountSpec } from './validate.ts';

export interface Mount {
  kind: 'volume' | 'host';
  /** The volume name, or the host directory. */
  source: string;
  target: string;
  /** Where the data is on the host. */
  hostPath: string;
  createdAt: string;
}

interface Row {
  kind: 'volume' | 'host';
  source: string;
  target: string;
  created_at: string;
}

export function volumesDir(dataDir: string): string {
  return join(dataDir, 'volumes');
}

export class Storage {
  private readonly db: Db;
  private readonly dataDir: string;
  constructor(db: Db, dataDir: string) {
    this.db = db;
    this.dataDir = dataDir;
  }

  private hostPath(app: AppName, r: Pick<Row, 'kind' | 'source'>): string {
    return r.kind === 'host' ? r.source : join(volumesDir(this.dataDir), app, r.source);
  }

  list(app: AppName): Mount[] {
    const rows = this.db
      .prepare('SELECT kind, source, target, created_at FROM mounts WHERE app = ? ORDER BY target')
      .all(app) as unknown as Row[];
    return rows.map((r) => ({
      kind: r.kind,
      source: r.source,
      target: r.target,
      hostPath: this.hostPath(app, r),
      createdAt: r.created_at,
    }));
  }

  /** Records the mount (the caller checked the app exists); one source per container path. */
  mount(app: AppName, spec: MountSpec): Mount {
    const source = spec.source.kind === 'volume' ? spec.source.name : spec.source.path;
    const cur = this.list(app).find((m) => m.target === spec.target);
    if (cur !== undefined) {
      if (cur.kind === spec.source.kind && cur.source === source) return cur;
      throw new Conflict(
        `${spec.target} of ${app} already has ${cur.source} mounted: storage:unmount it first`,
        { app, target: spec.target, source: cur.source },
      );
    }
    this.db
      .prepare('INSERT INTO mounts (app, target, kind, source, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(app, spec.target, spec.source.kind, source, new Date().toISOString());
    return this.list(app).find((m) => m.target === spec.target)!;
  }

  /** Forgets the mount; a named volume's data stays (mount it again to get it back). */
  unmount(app: AppName, target: ContainerPath, source: string | null = null): Mount {
    const cur = this.list(app).find(
      (m) => m.target === target && (source === null || m.source === source),
    );
    if (cur === undefined)
      throw new NotFound(`${app} has nothing mounted on ${target}`, { app, target });
    this.db.prepare('DELETE FROM mounts WHERE app = ? AND target = ?').run(app, target);
    return cur;
  }

  /**
   * The runtime volumes every process of the app starts with. A named volume's directory is
   * made on first use, owned by root, and handed to the image's USER by the runtime
   * (`initOwner`) while it is still empty; a host directory is the operator's and keeps its
   * owner.
   */
  volumes(app: AppName): Volume[] {
    return this.list(app).map((m) => {
      if (m.kind === 'host') return { source: m.hostPath, target: m.target };
      // The volumes tree is root's alone: processes reach their volume through the mount.
      mkdirSync(volumesDir(this.dataDir), { recursive: true, mode: 0o700 });
      mkdirSync(m.hostPath, { recursive: true, mode: 0o755 });
      return { source: m.hostPath, target: m.target, initOwner: true };
    });
  }

  /** apps:destroy --purge-storage: deletes every named volume of the app. */
  purge(app: AppName): void {
    rmSync(join(volumesDir(this.dataDir), app), { recursive: true, force: true });
  }
}

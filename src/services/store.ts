// The services and links tables: what exists and who may use it. The service's data lives in
// `<data-dir>/services/<name>/` (data: its volume; run: its socket directory).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tx, type AppName, type Db } from '../apps/index.ts';
import { Conflict, ServiceExists, ServiceNotFound } from '../errors/index.ts';
import type { Alias, ServiceName, ServiceType } from './validate.ts';

export interface Service {
  name: ServiceName;
  type: ServiceType;
  image: string;
  password: string;
  createdAt: string;
}

export interface Link {
  service: ServiceName;
  app: AppName;
  alias: Alias;
  createdAt: string;
}

interface ServiceRow {
  name: string;
  type: string;
  image: string;
  password: string;
  created_at: string;
}

const toService = (r: ServiceRow): Service => ({
  name: r.name as ServiceName,
  type: r.type as ServiceType,
  image: r.image,
  password: r.password,
  createdAt: r.created_at,
});

export function serviceDir(dataDir: string, name: ServiceName): string {
  return join(dataDir, 'services', name);
}

/** 32 random bytes as hex: URL-safe, so it needs no escaping in DATABASE_URL. */
export function newPassword(): string {
  return randomBytes(32).toString('hex');
}

export class ServiceStore {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  create(name: ServiceName, type: ServiceType, image: string): Service {
    return tx(this.db, () => {
      if (this.find(name) !== null)
        throw new ServiceExists(`service "${name}" already exists`, { service: name });
      this.db
        .prepare(
          'INSERT INTO services (name, type, image, password, created_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(name, type, image, newPassword(), new Date().toISOString());
      return this.get(name);
    });
  }

  find(name: ServiceName): Service | null {
    const r = this.db.prepare('SELECT * FROM services WHERE name = ?').get(name) as
      ServiceRow | undefined;
    return r === undefined ? null : toService(r);
  }

  get(name: ServiceName): Service {
    const s = this.find(name);
    if (s === null)
      throw new ServiceNotFound(`service "${name}" does not exist`, { service: name });
    return s;
  }

  list(): Service[] {
    return (
      this.db.prepare('SELECT * FROM services ORDER BY name').all() as unknown as ServiceRow[]
    ).map(toService);
  }

  /** Refused while an app is linked: unlink first, so no app loses its database silently. */
  delete(name: ServiceName): void {
    tx(this.db, () => {
      this.get(name);
      const links = this.links(name);
      if (links.length > 0)
        throw new Conflict(
          `service "${name}" is linked to ${links.map((l) => l.app).join(', ')}: services:unlink it first`,
          { service: name, apps: links.map((l) => l.app) },
        );
      this.db.prepare('DELETE FROM services WHERE name = ?').run(name);
    });
  }

  links(name: ServiceName): Link[] {
    return this.linkRows('SELECT * FROM service_links WHERE service = ? ORDER BY app', name);
  }

  linksOf(app: AppName): Link[] {
    return this.linkRows('SELECT * FROM service_links WHERE app = ? ORDER BY service', app);
  }

  /** One row shape for both directions of the link table. */
  private linkRows(sql: string, key: string): Link[] {
    return (
      this.db.prepare(sql).all(key) as {
        service: string;
        app: string;
        alias: string;
        created_at: string;
      }[]
    ).map((r) => ({
      service: r.service as ServiceName,
      app: r.app as AppName,
      alias: r.alias as Alias,
      createdAt: r.created_at,
    }));
  }

  /** One link per (service, app), and one service per alias of an app. */
  link(name: ServiceName, app: AppName, alias: Alias): Link {
    return tx(this.db, () => {
      this.get(name);
      if (this.links(name).some((l) => l.app === app))
        throw new Conflict(`service "${name}" is already linked to ${app}`, { service: name, app });
      const clash = this.linksOf(app).find((l) => l.alias === alias);
      if (clash !== undefined)
        throw new Conflict(
          `${app} already has ${alias}_URL from service "${clash.service}": choose another --alias`,
          { service: name, app, alias },
        );
      this.db
        .prepare('INSERT INTO service_links (service, app, alias, created_at) VALUES (?, ?, ?, ?)')
        .run(name, app, alias, new Date().toISOString());
      return this.links(name).find((l) => l.app === app)!;
    });
  }

  unlink(name: ServiceName, app: AppName): Link {
    const l = this.links(name).find((x) => x.app === app);
    if (l === undefined)
      throw new Conflict(`service "${name}" is not linked to ${app}`, { service: name, app });
    this.db.prepare('DELETE FROM service_links WHERE service = ? AND app = ?').run(name, app);
    return l;
  }
}

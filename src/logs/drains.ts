// An app's log drains: kept in the state database (so they outlive the daemon), and, while the
// daemon runs, each one fed every line the app's log store takes — app output, build output,
// router access lines and platform lines alike, from the same place `paas logs` reads them.
import { randomUUID } from 'node:crypto';
import type { Db } from '../apps/index.ts';
import { DrainExists, DrainNotFound, InvalidDrainUrl } from '../errors/index.ts';
import { Drain, type DrainOptions, type DrainStats } from './drain.ts';
import { HttpsDrain } from './drain-https.ts';
import { SyslogDrain } from './drain-syslog.ts';
import { parseDrainUrl, type DrainKind, type DrainUrl } from './drain-url.ts';
import type { LogStore } from './store.ts';

/** Most drains one app may have (Heroku allows five per app too). */
export const MAX_DRAINS_PER_APP = 5;

export interface DrainInfo extends DrainStats {
  id: string;
  /** The URL with its credentials hidden. */
  url: string;
  kind: DrainKind;
  createdAt: string;
}

interface Row {
  id: string;
  app: string;
  url: string;
  created_at: string;
}

/** One transport per kind, chosen loudly: an unknown kind is an error, not a fallback. */
function createDrain(
  id: string,
  app: string,
  url: DrainUrl,
  opts: DrainOptions,
  report: (text: string) => void,
): Drain {
  switch (url.kind) {
    case 'syslog+tcp':
    case 'syslog+tls':
      return new SyslogDrain(id, app, url, opts, report);
    case 'https':
      return new HttpsDrain(id, app, url, opts, report);
    default:
      throw new InvalidDrainUrl(`no drain transport for ${String(url.kind)}`);
  }
}

export class DrainManager {
  private readonly db: Db;
  private readonly logs: LogStore;
  private readonly opts: DrainOptions;
  private readonly log: (msg: string, extra?: Record<string, unknown>) => void;
  private readonly drains = new Map<string, { drain: Drain; createdAt: string }>();
  private readonly follows = new Map<string, () => void>();

  constructor(opts: {
    db: Db;
    logs: LogStore;
    drain?: DrainOptions;
    log?: (msg: string, extra?: Record<string, unknown>) => void;
  }) {
    this.db = opts.db;
    this.logs = opts.logs;
    this.opts = opts.drain ?? {};
    this.log = opts.log ?? (() => undefined);
  }

  /** Starts every stored drain (at daemon start). */
  start(): void {
    const rows = this.db
      .prepare('SELECT * FROM drains ORDER BY app, created_at')
      .all() as unknown as Row[];
    for (const r of rows) {
      try {
        this.run(r.id, r.app, parseDrainUrl(r.url), r.created_at);
      } catch (e) {
        // A row this version no longer accepts stays stored (drains:remove still finds it).
        this.log('drain not started', { app: r.app, id: r.id, err: (e as Error).message });
      }
    }
  }

  add(app: string, url: DrainUrl): DrainInfo {
    const rows = this.rows(app);
    if (rows.some((r) => r.url === url.href))
      throw new DrainExists(`${app} already drains to ${url.redacted}`, { app });
    if (rows.length >= MAX_DRAINS_PER_APP)
      throw new DrainExists(
        `${app} has ${MAX_DRAINS_PER_APP} drains already, the most an app may have`,
        {
          app,
        },
      );
    // Heroku's drain token shape: `d.` and a UUID.
    const id = `d.${randomUUID()}`;
    const createdAt = new Date().toISOString();
    this.db
      .prepare('INSERT INTO drains (id, app, url, created_at) VALUES (?, ?, ?, ?)')
      .run(id, app, url.href, createdAt);
    this.run(id, app, url, createdAt);
    this.logs.append(app, { source: 'system', text: `drain ${id} added: ${url.redacted}` });
    this.log('drain added', { app, id, url: url.redacted });
    return this.info(id)!;
  }

  /** Removes the drain named by its id or its URL as given to drains:add. */
  remove(app: string, idOrUrl: string): DrainInfo {
    const rows = this.rows(app);
    let href: string | null = null;
    try {
      href = parseDrainUrl(idOrUrl).href;
    } catch {
      // not a URL: an id then
    }
    const r = rows.find((x) => x.id === idOrUrl || x.url === href);
    if (r === undefined)
      throw new DrainNotFound(`${app} has no such drain (see "paas drains ${app}")`, { app });
    const info = this.info(r.id) ?? this.rowInfo(r);
    this.db.prepare('DELETE FROM drains WHERE id = ?').run(r.id);
    this.stop(r.id);
    this.logs.append(app, { source: 'system', text: `drain ${r.id} removed: ${info.url}` });
    this.log('drain removed', { app, id: r.id });
    return info;
  }

  list(app: string): DrainInfo[] {
    return this.rows(app).map((r) => this.info(r.id) ?? this.rowInfo(r));
  }

  /** Stops an app's drains; its rows go with the app (AppStore.destroy). */
  forgetApp(app: string): void {
    for (const [id, d] of this.drains) if (d.drain.app === app) this.stop(id);
  }

  close(): void {
    for (const id of [...this.drains.keys()]) this.stop(id);
  }

  private rows(app: string): Row[] {
    return this.db
      .prepare('SELECT * FROM drains WHERE app = ? ORDER BY created_at, id')
      .all(app) as unknown as Row[];
  }

  private run(id: string, app: string, url: DrainUrl, createdAt: string): void {
    const report = (text: string): void => void this.logs.append(app, { source: 'system', text });
    this.drains.set(id, { drain: createDrain(id, app, url, this.opts, report), createdAt });
    if (!this.follows.has(app)) {
      const off = this.logs.follow(app, {}, (l) => {
        for (const { drain } of this.drains.values()) if (drain.app === app) drain.push(l);
      });
      this.follows.set(app, off);
    }
  }

  private stop(id: string): void {
    const d = this.drains.get(id);
    if (d === undefined) return;
    d.drain.close();
    this.drains.delete(id);
    const app = d.drain.app;
    if (![...this.drains.values()].some((x) => x.drain.app === app)) {
      this.follows.get(app)?.();
      this.follows.delete(app);
    }
  }

  private info(id: string): DrainInfo | null {
    const d = this.drains.get(id);
    if (d === undefined) return null;
    return {
      id,
      url: d.drain.url.redacted,
      kind: d.drain.url.kind,
      createdAt: d.createdAt,
      ...d.drain.stats(),
    };
  }

  /** A stored drain that is not running (its URL no longer parses): shown, never its URL. */
  private rowInfo(r: Row): DrainInfo {
    let url = '(invalid URL)';
    let kind: DrainKind = 'https';
    try {
      const u = parseDrainUrl(r.url);
      url = u.redacted;
      kind = u.kind;
    } catch {
      // keep the placeholders
    }
    return {
      id: r.id,
      url,
      kind,
      createdAt: r.created_at,
      state: 'down',
      buffered: 0,
      bufferedBytes: 0,
      delivered: 0,
      dropped: 0,
      lastError: 'not running',
    };
  }
}

// Scoped API tokens (issue 19). A token is `paas_<id>_<secret>`: the id finds its row, and
// only sha256(secret) is stored, compared in constant time. 256 random bits need no slow
// hash: nobody can brute-force a preimage of a random 32-byte secret, so a leaked tokens.db
// opens nothing. The secret is shown once, by `tokens:create`, and never logged.
//
// Tokens live in their own SQLite file (tokens.db, 0600) rather than in paas.db: credentials
// are the daemon's, not the apps' state, and a copy of paas.db for debugging or a backup
// restored elsewhere should not carry them.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseAppName, type AppName } from '../apps/index.ts';
import { InvalidArgument, NotFound } from '../errors/index.ts';
import type { TokenInfo } from '../api/index.ts';

export const SCOPES = ['read', 'deploy', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** What a request may do: the token's id (never its secret), scope and apps (null: every app). */
export interface Grant {
  id: string;
  scope: Scope;
  apps: readonly AppName[] | null;
  label: string | null;
}

/** The `--scope` validator. */
export function parseScope(raw: unknown): Scope {
  if (typeof raw === 'string' && (SCOPES as readonly string[]).includes(raw)) return raw as Scope;
  throw new InvalidArgument(`scope must be one of ${SCOPES.join(', ')}`, { field: 'scope' });
}

const UNITS: Record<string, number> = { m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** The `--expires` validator: `90m`, `12h`, `30d`, `2w`; up to ten years. Returns seconds. */
export function parseExpiry(raw: unknown): number {
  const m = typeof raw === 'string' ? /^([1-9][0-9]{0,5})([mhdw])$/.exec(raw) : null;
  const s = m === null ? NaN : Number(m[1]) * UNITS[m[2]!]!;
  if (!(s > 0 && s <= 3650 * 86400))
    throw new InvalidArgument(
      'expires must be a duration like 90m, 12h, 30d or 2w (up to 10 years)',
      {
        field: 'expires',
      },
    );
  return s;
}

/** The `--label` validator: printable, short, one line. */
export function parseLabel(raw: unknown): string | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw !== 'string' || raw.length > 100 || !/^[\x20-\x7e]+$/.test(raw))
    throw new InvalidArgument('label must be up to 100 printable ASCII characters', {
      field: 'label',
    });
  return raw;
}

const TOKEN = /^paas_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

interface Row {
  id: string;
  hash: Uint8Array;
  scope: string;
  apps: string | null;
  label: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

function info(r: Row): TokenInfo {
  return {
    id: r.id,
    scope: r.scope as Scope,
    apps: r.apps === null ? null : (JSON.parse(r.apps) as string[]),
    label: r.label,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
  };
}

// last_used is a convenience, not an audit trail: written at most once a minute per token so
// a busy CI token does not turn every request into a disk write.
const LAST_USED_EVERY_MS = 60_000;

export class TokenStore {
  readonly #db: DatabaseSync;
  readonly #touched = new Map<string, number>();

  constructor(dataDir: string) {
    const path = join(dataDir, 'tokens.db');
    // Created 0600 before SQLite opens it: the hashes are not secrets, but the labels and
    // app lists are the operator's business.
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
    this.#db = new DatabaseSync(path);
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY, hash BLOB NOT NULL, scope TEXT NOT NULL, apps TEXT, label TEXT,
        created_at TEXT NOT NULL, expires_at TEXT, last_used_at TEXT)`);
  }

  create(opts: {
    scope: Scope;
    apps: readonly AppName[] | null;
    expiresInSeconds: number | null;
    label: string | null;
  }): { token: string; info: TokenInfo } {
    if (opts.scope === 'admin' && opts.apps !== null)
      throw new InvalidArgument('an admin token covers every app: --app goes with read or deploy');
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = new Date();
    const expires =
      opts.expiresInSeconds === null
        ? null
        : new Date(now.getTime() + opts.expiresInSeconds * 1000).toISOString();
    this.#db
      .prepare(
        'INSERT INTO tokens (id, hash, scope, apps, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        id,
        digest(secret),
        opts.scope,
        opts.apps === null ? null : JSON.stringify([...new Set(opts.apps)].sort()),
        opts.label,
        now.toISOString(),
        expires,
      );
    return { token: `paas_${id}_${secret}`, info: this.get(id) };
  }

  get(id: string): TokenInfo {
    const r = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Row | undefined;
    if (r === undefined) throw new NotFound(`no token with id ${id}`, { id });
    return info(r);
  }

  list(): TokenInfo[] {
    return (
      this.#db.prepare('SELECT * FROM tokens ORDER BY created_at').all() as unknown as Row[]
    ).map(info);
  }

  revoke(id: string): void {
    if (!/^[0-9a-f]{16}$/.test(id))
      throw new InvalidArgument('a token id is 16 hex digits', { id });
    const r = this.#db.prepare('DELETE FROM tokens WHERE id = ?').run(id);
    if (r.changes === 0) throw new NotFound(`no token with id ${id}`, { id });
    this.#touched.delete(id);
  }

  /**
   * The grant of a presented token: `{ grant }`, or why not (`unknown` also covers a wrong
   * secret for a real id, so a guesser learns nothing about ids). Read from the database each
   * time, so a revocation holds from the next request on.
   */
  check(presented: string): { grant: Grant } | { refused: 'unknown' | 'expired'; id?: string } {
    const m = TOKEN.exec(presented);
    if (m === null) return { refused: 'unknown' };
    const id = m[1]!;
    const r = this.#db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Row | undefined;
    // Hash and compare even for an unknown id, so both take the same time.
    const want = r === undefined ? Buffer.alloc(32) : Buffer.from(r.hash);
    const ok = timingSafeEqual(digest(m[2]!), want) && r !== undefined;
    if (!ok) return { refused: 'unknown' };
    if (r.expires_at !== null && Date.parse(r.expires_at) <= Date.now())
      return { refused: 'expired', id };
    const now = Date.now();
    if ((this.#touched.get(id) ?? 0) + LAST_USED_EVERY_MS <= now) {
      this.#touched.set(id, now);
      this.#db
        .prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?')
        .run(new Date(now).toISOString(), id);
    }
    const i = info(r);
    return {
      grant: {
        id,
        scope: i.scope,
        apps: i.apps === null ? null : i.apps.map((a) => parseAppName(a)),
        label: i.label,
      },
    };
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

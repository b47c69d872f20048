// The SSH keys that may push, in the daemon's SQLite state. Looked up by fingerprint on
// every authentication attempt, so the fingerprint is unique (one key, one name).
import { tx, type AppName, type Db } from '../apps/index.ts';
import { SshKeyExists, SshKeyNotFound } from '../errors/index.ts';
import type { SshKeyName, SshKeyType, SshPublicKey } from './keys.ts';

export interface SshKey {
  name: SshKeyName;
  type: SshKeyType;
  bits: number;
  fingerprint: string;
  /** `<type> <base64>` */
  publicKey: string;
  comment: string;
  /** The apps this key may push to and fetch from; empty: every app. */
  apps: AppName[];
  createdAt: string;
}

interface Row {
  name: string;
  type: string;
  bits: number;
  fingerprint: string;
  public_key: string;
  comment: string;
  apps: string;
  created_at: string;
}

function toKey(r: Row): SshKey {
  return {
    name: r.name as SshKeyName,
    type: r.type as SshKeyType,
    bits: r.bits,
    fingerprint: r.fingerprint,
    publicKey: r.public_key,
    comment: r.comment,
    apps: JSON.parse(r.apps) as AppName[],
    createdAt: r.created_at,
  };
}

export class SshKeys {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  add(name: SshKeyName, key: SshPublicKey, apps: readonly AppName[]): SshKey {
    return tx(this.db, () => {
      if (this.db.prepare('SELECT 1 FROM ssh_keys WHERE name = ?').get(name) !== undefined)
        throw new SshKeyExists(`an SSH key named "${name}" exists; remove it first`, { name });
      const same = this.byFingerprint(key.fingerprint);
      if (same !== null)
        throw new SshKeyExists(`this key (${key.fingerprint}) is already added as "${same.name}"`, {
          name: same.name,
        });
      const row: Row = {
        name,
        type: key.type,
        bits: key.bits,
        fingerprint: key.fingerprint,
        public_key: key.line,
        comment: key.comment,
        apps: JSON.stringify([...new Set(apps)].sort()),
        created_at: new Date().toISOString(),
      };
      this.db
        .prepare(
          'INSERT INTO ssh_keys (name, type, bits, fingerprint, public_key, comment, apps, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          row.name,
          row.type,
          row.bits,
          row.fingerprint,
          row.public_key,
          row.comment,
          row.apps,
          row.created_at,
        );
      return toKey(row);
    });
  }

  list(): SshKey[] {
    return (this.db.prepare('SELECT * FROM ssh_keys ORDER BY name').all() as unknown as Row[]).map(
      toKey,
    );
  }

  byFingerprint(fingerprint: string): SshKey | null {
    const r = this.db.prepare('SELECT * FROM ssh_keys WHERE fingerprint = ?').get(fingerprint) as
      Row | undefined;
    return r === undefined ? null : toKey(r);
  }

  remove(name: SshKeyName): void {
    const r = this.db.prepare('DELETE FROM ssh_keys WHERE name = ?').run(name);
    if (r.changes === 0) throw new SshKeyNotFound(`no SSH key named "${name}"`, { name });
  }
}

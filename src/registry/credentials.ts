// Registry credentials (`paas registry:login`), as `docker login` keeps them: one file in the
// data dir, `registry-auth.json`, mode 0600 from its creation (written to a 0600 tmp file and
// renamed, so no reader ever sees it wider). Passwords are never logged: nothing here prints,
// and errors name the host and user only.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeFileWholeAsync } from '../files/index.ts';
import type { RegistryCredential } from './types.ts';

export type Credential = RegistryCredential;

export class CredentialStore {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'registry-auth.json');
  }

  private async readAll(): Promise<Record<string, Credential>> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch {
      return {};
    }
    try {
      const doc = JSON.parse(text) as { auths?: Record<string, Credential> };
      return doc.auths ?? {};
    } catch {
      return {};
    }
  }

  private async writeAll(auths: Record<string, Credential>): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    await writeFileWholeAsync(this.file, JSON.stringify({ auths }, null, 2), { mode: 0o600 });
  }

  async get(host: string): Promise<Credential | null> {
    return (await this.readAll())[host] ?? null;
  }

  async set(host: string, cred: Credential): Promise<void> {
    const all = await this.readAll();
    all[host] = { username: cred.username, password: cred.password };
    await this.writeAll(all);
  }

  /** True when there was a credential to remove. */
  async remove(host: string): Promise<boolean> {
    const all = await this.readAll();
    if (!(host in all)) return false;
    delete all[host];
    await this.writeAll(all);
    return true;
  }
}

// Read-only access to the files of an app being detected or deployed. Detection looks only
// at the repository root and a few named files; paths are relative to the app and resolved
// beneath it by the in-root resolver (a symlinked package.json or Procfile pointing at
// /etc/shadow reads as absent, so its content never reaches a parse error or a log).
import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { BuildFailed, InvalidPath } from '../errors/index.ts';
import { hostRootSync, resolveInRootSync, type SyncRoot } from '../fsroot/index.ts';

export class AppFiles {
  readonly dir: string;
  readonly #root: string;
  readonly #host: SyncRoot;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.#root = realpathSync(this.dir);
    this.#host = hostRootSync(this.#root);
  }

  /** The host path of `rel` inside the app, or null when missing or leading out of it. */
  #resolve(rel: string): string | null {
    try {
      const r = resolveInRootSync(this.#host, rel, { beneath: true });
      return r.stat === null ? null : path.join(this.#root, ...r.parts);
    } catch (err) {
      if (err instanceof InvalidPath) return null;
      throw err;
    }
  }

  isFile(rel: string): boolean {
    const p = this.#resolve(rel);
    return p !== null && lstatSync(p).isFile();
  }

  isDir(rel: string): boolean {
    const p = this.#resolve(rel);
    return p !== null && lstatSync(p).isDirectory();
  }

  read(rel: string): string | null {
    const p = this.#resolve(rel);
    return p !== null && lstatSync(p).isFile() ? readFileSync(p, 'utf8') : null;
  }

  /** A JSON object file, or null when absent; malformed JSON fails the build naming the file. */
  json(rel: string): Record<string, unknown> | null {
    const text = this.read(rel);
    if (text === null) return null;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new BuildFailed(`${rel} is not valid JSON: ${(e as Error).message}`, {
        step: 'detect',
        file: rel,
      });
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new BuildFailed(`${rel} must hold a JSON object`, { step: 'detect', file: rel });
    return v as Record<string, unknown>;
  }
}

// Read-only access to the files of an app being detected. Detection looks only at the
// repository root and a few named files; paths are relative to the app and never leave it
// (a symlinked package.json pointing at /etc/passwd reads as absent).
import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { BuildFailed } from '../errors/index.ts';

export class AppFiles {
  readonly dir: string;
  readonly #root: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.#root = realpathSync(this.dir);
  }

  #resolve(rel: string): string | null {
    const abs = path.resolve(this.#root, rel);
    if (abs !== this.#root && !abs.startsWith(this.#root + path.sep)) return null;
    try {
      const real = realpathSync(abs);
      return real === this.#root || real.startsWith(this.#root + path.sep) ? real : null;
    } catch {
      return null;
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

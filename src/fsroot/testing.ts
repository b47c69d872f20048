// Test support: a directory tree with files and (hostile) symlinks, as a pushed checkout or
// an image layer would hold them.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function makeTree(
  dir: string,
  files: Record<string, string>,
  links: Record<string, string> = {},
): string {
  mkdirSync(dir, { recursive: true });
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), body);
  }
  for (const [rel, target] of Object.entries(links)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    symlinkSync(target, path.join(dir, rel));
  }
  return dir;
}

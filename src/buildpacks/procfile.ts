// Procfile reading for detection and the default process types (Heroku's format:
// `type: command` per line, `#` comments). The pipeline parses it again into argv when it
// makes the release; here only the names and command lines matter.
import { BuildFailed } from '../errors/index.ts';
import type { AppFiles } from './app.ts';

const LINE = /^([A-Za-z0-9_-]+):\s*(.+)$/;

export function readProcfile(app: AppFiles): Record<string, string> | null {
  const text = app.read('Procfile');
  if (text === null) return null;
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null)
      throw new BuildFailed(
        `Procfile: cannot parse line "${line.slice(0, 80)}" (expected "type: command")`,
        { step: 'detect' },
      );
    out[m[1]!.toLowerCase()] = m[2]!;
  }
  return out;
}

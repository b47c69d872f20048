// The one Procfile parser (Heroku's format: `type: command` per line, `#` comments). Detection
// reads it for the default process types; the release turns each command into argv. A type
// is held to the process-type rule of app state (it becomes part of a hostname).
import { parseProcessType, type ProcessType } from '../apps/index.ts';
import { BuildFailed, InvalidArgument } from '../errors/index.ts';
import type { AppFiles } from './app.ts';

const LINE = /^([A-Za-z0-9_-]+):\s*(.+)$/;

/** Process type → command line, in file order; a bad line or type fails the build naming it. */
export function parseProcfile(text: string): Record<string, string> {
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
    let type: ProcessType;
    try {
      type = parseProcessType(m[1]!.toLowerCase());
    } catch (e) {
      if (!(e instanceof InvalidArgument)) throw e;
      throw new BuildFailed(`Procfile: ${e.message}`, { step: 'detect', type: m[1]! });
    }
    out[type] = m[2]!;
  }
  return out;
}

export function readProcfile(app: AppFiles): Record<string, string> | null {
  const text = app.read('Procfile');
  return text === null ? null : parseProcfile(text);
}

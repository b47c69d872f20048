// One log line: `<ISO time> <tag>: <text>`, Heroku's shape. Tags are `app[web.1]` for a
// process, `app[build]` for build output, `router` for access lines, `paas` for platform
// events. Text is always one printable line: long lines are split, binary is escaped.

export type Source = 'app' | 'build' | 'router' | 'system';
export const SOURCES: readonly Source[] = ['app', 'build', 'router', 'system'];

export interface LogLine {
  ts: string;
  source: Source;
  /** Process (`web.1`) for app lines, `build` for build lines, null otherwise. */
  ps: string | null;
  text: string;
}

/** Longest text kept on one stored line; longer output continues on the next lines. */
export const MAX_LINE_BYTES = 8192;

const fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes → printable text: valid UTF-8 stays as is, other bytes and control characters
 * (but tab) become `\xNN`, so a terminal reading `paas logs` cannot be driven by app output.
 */
export function escapeBytes(buf: Uint8Array): string {
  let s: string;
  try {
    s = fatal.decode(buf);
  } catch {
    s = '';
    for (const b of buf)
      s +=
        b >= 0x20 && b < 0x7f
          ? String.fromCharCode(b)
          : b === 0x09
            ? '\t'
            : `\\x${b.toString(16).padStart(2, '0')}`;
    return s;
  }
  // eslint-disable-next-line no-control-regex
  return s.replace(
    /[\x00-\x08\x0a-\x1f\x7f\u0080-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Splits text into pieces of at most MAX_LINE_BYTES UTF-8 bytes, never inside a character. */
export function splitLong(text: string, max = MAX_LINE_BYTES): string[] {
  if (Buffer.byteLength(text) <= max) return [text];
  const out: string[] = [];
  let cur = '';
  let curBytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (curBytes + n > max) {
      out.push(cur);
      cur = '';
      curBytes = 0;
    }
    cur += ch;
    curBytes += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export function tagOf(l: Pick<LogLine, 'source' | 'ps'>): string {
  switch (l.source) {
    case 'app':
      return `app[${l.ps ?? 'run'}]`;
    case 'build':
      return 'app[build]';
    case 'router':
      return 'router';
    case 'system':
      return 'paas';
  }
}

export function formatLine(l: LogLine): string {
  return `${l.ts} ${tagOf(l)}: ${l.text}`;
}

const PARSE = /^(\S+) (?:app\[([a-z0-9.-]+)\]|(router)|(paas)): (.*)$/;

export function parseLine(s: string): LogLine | null {
  const m = PARSE.exec(s);
  if (m === null) return null;
  const [, ts, ps, router, , text] = m;
  if (ps !== undefined)
    return { ts: ts!, source: ps === 'build' ? 'build' : 'app', ps, text: text! };
  return { ts: ts!, source: router !== undefined ? 'router' : 'system', ps: null, text: text! };
}

export interface Filter {
  source?: Source;
  /** Process type (`web`) or process (`web.1`). */
  ps?: string;
}

export function matches(l: LogLine, f: Filter): boolean {
  if (f.source !== undefined && l.source !== f.source) return false;
  if (f.ps !== undefined) {
    if (l.ps === null || l.source !== 'app') return false;
    if (l.ps !== f.ps && !l.ps.startsWith(`${f.ps}.`)) return false;
  }
  return true;
}

import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  escapeBytes,
  formatLine,
  LogCollector,
  LogStore,
  MAX_LINE_BYTES,
  parseLine,
  type LogLine,
} from './index.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'paas-logs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('line format', () => {
  it('round-trips every tag', () => {
    const cases: LogLine[] = [
      { ts: '2025-01-01T00:00:00.000Z', source: 'app', ps: 'web.1', text: 'listening on 5000' },
      {
        ts: '2025-01-01T00:00:00.000Z',
        source: 'build',
        ps: 'build',
        text: 'Step 1/3 : FROM busybox',
      },
      { ts: '2025-01-01T00:00:00.000Z', source: 'router', ps: null, text: 'status=200' },
      { ts: '2025-01-01T00:00:00.000Z', source: 'system', ps: null, text: 'deployed v2' },
    ];
    for (const c of cases) expect(parseLine(formatLine(c))).toEqual(c);
    expect(formatLine(cases[0]!)).toBe('2025-01-01T00:00:00.000Z app[web.1]: listening on 5000');
  });

  it('escapes binary and control characters but keeps UTF-8 text', () => {
    expect(escapeBytes(Buffer.from('héllo\tworld'))).toBe('héllo\tworld');
    expect(escapeBytes(Buffer.from([0x41, 0xff, 0x00, 0x1b, 0x42]))).toBe('A\\xff\\x00\\x1bB');
    expect(escapeBytes(Buffer.from('\x1b[31mred'))).toBe('\\x1b[31mred');
  });
});

describe('LogStore', () => {
  it('returns the last n lines, filtered by source and process', () => {
    const s = new LogStore({ dir });
    for (let i = 0; i < 10; i++)
      s.append('shop', { source: 'app', ps: `web.${(i % 2) + 1}`, text: `line ${i}` });
    s.append('shop', { source: 'build', ps: 'build', text: 'built' });
    s.append('shop', { source: 'system', text: 'deployed v1' });
    expect(s.tail('shop', 3).map((l) => l.text)).toEqual(['line 9', 'built', 'deployed v1']);
    expect(s.tail('shop', 2, { ps: 'web.1' }).map((l) => l.text)).toEqual(['line 6', 'line 8']);
    expect(s.tail('shop', 100, { ps: 'web' })).toHaveLength(10);
    expect(s.tail('shop', 100, { source: 'build' }).map((l) => l.text)).toEqual(['built']);
    expect(s.tail('other', 10)).toEqual([]);
  });

  it('splits long lines instead of dropping them', () => {
    const s = new LogStore({ dir });
    const long = 'x'.repeat(MAX_LINE_BYTES * 2 + 10);
    s.append('shop', { source: 'app', ps: 'web.1', text: long });
    const got = s.tail('shop', 10);
    expect(got).toHaveLength(3);
    expect(got.map((l) => l.text).join('')).toBe(long);
  });

  it('keeps each app under its retention budget', () => {
    const s = new LogStore({ dir, retentionBytes: 64 * 1024 });
    for (let i = 0; i < 2000; i++)
      s.append('shop', { source: 'app', ps: 'web.1', text: `line ${i} ${'y'.repeat(100)}` });
    expect(s.bytesUsed('shop')).toBeLessThanOrEqual(64 * 1024);
    const last = s.tail('shop', 1)[0]!;
    expect(last.text.startsWith('line 1999 ')).toBe(true);
    // Reading across the rotation boundary returns one contiguous run ending at the newest.
    const all = s.tail('shop', 10_000).map((l) => Number(l.text.split(' ')[1]));
    expect(all.length).toBeGreaterThan(200);
    expect(all).toEqual(all.map((_, i) => 2000 - all.length + i));
  });

  it('streams appended lines to followers until they unsubscribe', () => {
    const s = new LogStore({ dir });
    const seen: string[] = [];
    const off = s.follow('shop', { source: 'app' }, (l) => seen.push(l.text));
    s.append('shop', { source: 'app', ps: 'web.1', text: 'a' });
    s.append('shop', { source: 'system', text: 'ignored' });
    off();
    s.append('shop', { source: 'app', ps: 'web.1', text: 'b' });
    expect(seen).toEqual(['a']);
  });
});

describe('LogCollector', () => {
  it('copies container output with its timestamps and resumes after a restart without loss', () => {
    const store = new LogStore({ dir: join(dir, 'apps') });
    const logPath = join(dir, 'c1.log');
    writeFileSync(
      logPath,
      '2025-02-03T04:05:06.789Z stdout hello\n2025-02-03T04:05:07.000Z stderr oops\npartial',
    );
    let c = new LogCollector(store, {});
    c.watchContainer('c1', 'shop', 'web.1', logPath);
    c.poll();
    expect(store.tail('shop', 10).map(formatLine)).toEqual([
      '2025-02-03T04:05:06.789Z app[web.1]: hello',
      '2025-02-03T04:05:07.000Z app[web.1]: oops',
    ]);
    // The daemon restarts: a new collector resumes from the saved offset.
    appendFileSync(logPath, ' line\n2025-02-03T04:05:08.000Z stdout again\n');
    c = new LogCollector(store, {});
    c.watchContainer('c1', 'shop', 'web.1', logPath);
    c.poll();
    const texts = store.tail('shop', 10).map((l) => l.text);
    expect(texts.slice(0, 2)).toEqual(['hello', 'oops']);
    expect(texts).toContain('again');
    expect(texts.filter((t) => t === 'hello')).toHaveLength(1);
  });

  it('loses no line of a burst that outran the polls: past a rotation, and when the container goes', () => {
    const store = new LogStore({ dir: join(dir, 'apps') });
    const logPath = join(dir, 'c1.log');
    // ~6 MiB per generation: more than one bounded read (4 MiB) holds.
    const burst = (from: number) =>
      Array.from(
        { length: 60_000 },
        (_, i) => `2025-02-03T04:05:06.000Z stdout line ${from + i} ${'x'.repeat(80)}\n`,
      ).join('');
    writeFileSync(logPath, 'first\n');
    const c = new LogCollector(store, {});
    c.watchContainer('c1', 'shop', 'web.1', logPath);
    c.poll();
    appendFileSync(logPath, burst(0));
    renameSync(logPath, `${logPath}.1`); // the shim rotates before the next poll
    writeFileSync(logPath, burst(60_000));
    c.poll();
    c.unwatchContainer('c1'); // the container exited: the rest of its log is read now
    const numbers = store
      .tail('shop', 200_000)
      .map((l) => /^line (\d+) /.exec(l.text.toString())?.[1])
      .filter((n) => n !== undefined)
      .map(Number);
    expect(numbers).toHaveLength(120_000);
    expect(numbers.every((n, i) => n === i)).toBe(true);
  });

  it('tails the router access log across a rotation, per app', () => {
    const store = new LogStore({ dir: join(dir, 'apps') });
    const access = join(dir, 'access.log');
    const entry = (app: string, path: string) =>
      `${JSON.stringify({ level: 30, time: Date.now(), source: 'router', app, method: 'GET', path, status: 200, bytes: 5, duration: 1, host: `${app}.test`, upstream: '10.0.0.2:5000', requestId: 'r' })}\n`;
    writeFileSync(access, entry('shop', '/a') + entry('blog', '/b'));
    const c = new LogCollector(store, { routerAccessLog: access });
    c.poll();
    appendFileSync(access, entry('shop', '/c'));
    renameSync(access, `${access}.1`);
    writeFileSync(access, entry('shop', '/d'));
    c.poll();
    expect(store.tail('shop', 10).map((l) => /path="([^"]+)"/.exec(l.text)?.[1])).toEqual([
      '/a',
      '/c',
      '/d',
    ]);
    expect(store.tail('blog', 10).map((l) => l.source)).toEqual(['router']);
  });

  it('quotes a path with `"` or `\\` in it as logfmt does, so the field ends where it should', () => {
    const store = new LogStore({ dir: join(dir, 'apps') });
    const access = join(dir, 'quoted.log');
    const line = { level: 30, time: Date.now(), source: 'router', app: 'shop', method: 'GET' };
    writeFileSync(
      access,
      `${JSON.stringify({ ...line, path: '/a"status=500\\', status: 200, host: 'shop.test' })}\n`,
    );
    new LogCollector(store, { routerAccessLog: access }).poll();
    const text = store.tail('shop', 10).at(-1)?.text;
    expect(text).toContain('method=GET path="/a\\"status=500\\\\" host=shop.test status=200 ');
  });
});

describe('the router access log on disk', () => {
  it('is freed once read (a hole over what the collector saved), and reading goes on after it', async () => {
    const store = new LogStore({ dir: join(dir, 'apps') });
    const access = join(dir, 'access.log');
    const entry = (i: number) =>
      `${JSON.stringify({ level: 30, time: Date.now(), source: 'router', app: 'shop', method: 'GET', path: `/${i}`, status: 200, bytes: 5, duration: 1, host: 'shop.test', upstream: '10.0.0.2:5000', requestId: `r${'x'.repeat(200)}` })}\n`;
    const write = (from: number, to: number) =>
      appendFileSync(access, Array.from({ length: to - from }, (_, k) => entry(from + k)).join(''));
    const c = new LogCollector(store, {
      routerAccessLog: access,
      accessLogFree: { keep: 64 * 1024, step: 256 * 1024 },
    });
    // haproxy's way of writing it: one descriptor opened for appending, never reopened.
    write(0, 10_000); // ~3 MB
    c.poll();
    await c.settled();
    const st = statSync(access);
    expect(st.size).toBeGreaterThan(2_500_000);
    // On disk: what was kept, not all that was written.
    expect(st.blocks * 512).toBeLessThan(600 * 1024);
    write(10_000, 12_000);
    c.poll();
    await c.settled();
    const paths = store.tail('shop', 20_000).map((l) => /path="\/(\d+)"/.exec(l.text)?.[1]);
    expect(paths).toHaveLength(12_000);
    expect(paths.every((p, i) => p === String(i))).toBe(true);
    // The last lines read are still there for a human's tail.
    expect(readFileSync(access, 'utf8').trimEnd().split('\n').at(-1)).toContain('"/11999"');
  });
});

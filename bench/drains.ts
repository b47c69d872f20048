// Log-drain throughput on loopback, lines per second: an app's lines appended to its log store
// (as the collector does, 1000 at a time) and shipped by a syslog+tcp drain, beside util-linux
// `logger --tcp --octet-count --rfc5424` sending the same lines from a file to the same kind of
// receiver, in the same run. The receiver counts RFC 6587 frames; the clock stops at the last.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openState, parseAppName } from '../src/apps/index.ts';
import { DrainManager, LogStore, parseDrainUrl } from '../src/logs/index.ts';
import { deframe } from '../test/helpers/drains.ts';
import { table } from './lib.ts';

const N = Number(process.env.DRAIN_BENCH_LINES ?? 200_000);
const ROUNDS = 3;
const TEXT = (i: number) => `GET /api/items/${i} 200 12ms user=42 ${'x'.repeat(60)}`;

/** A receiver that resolves once it has counted `n` frames. */
async function receiver(n: number): Promise<{ port: number; done: Promise<number>; srv: Server }> {
  let count = 0;
  let finish: (t: number) => void = () => undefined;
  const done = new Promise<number>((r) => (finish = r));
  const srv = createServer((s) => {
    let rest: Buffer = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      const { frames, rest: left } = deframe(rest.length === 0 ? d : Buffer.concat([rest, d]));
      rest = left;
      count += frames.length;
      if (count >= n) finish(performance.now());
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.address() as { port: number }).port, done, srv };
}

async function ours(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-drains-'));
  const state = openState(dir);
  const app = parseAppName('bench');
  state.apps.create(app);
  const logs = new LogStore({ dir: join(dir, 'logs'), retentionBytes: 1024 ** 3 });
  const drains = new DrainManager({ db: state.db, logs });
  const r = await receiver(N + 1); // +1: the drain's own "drain added" line
  drains.add(app, parseDrainUrl(`syslog+tcp://127.0.0.1:${r.port}`));
  const t0 = performance.now();
  for (let i = 0; i < N; i += 1000) {
    for (let j = i; j < Math.min(N, i + 1000); j++)
      logs.append(app, { source: 'app', ps: 'web.1', text: TEXT(j) });
    await new Promise((res) => setImmediate(res));
  }
  const t1 = await r.done;
  drains.close();
  state.close();
  r.srv.close();
  rmSync(dir, { recursive: true, force: true });
  return (N / (t1 - t0)) * 1000;
}

/** The ceiling: the same appends with no drain (the store writes each line to disk). */
async function storeOnly(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-store-'));
  const logs = new LogStore({ dir, retentionBytes: 1024 ** 3 });
  const t0 = performance.now();
  for (let i = 0; i < N; i += 1000) {
    for (let j = i; j < Math.min(N, i + 1000); j++)
      logs.append('bench', { source: 'app', ps: 'web.1', text: TEXT(j) });
    await new Promise((res) => setImmediate(res));
  }
  const t1 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  return (N / (t1 - t0)) * 1000;
}

async function logger(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-logger-'));
  const file = join(dir, 'lines');
  writeFileSync(file, Array.from({ length: N }, (_, i) => `${TEXT(i)}\n`).join(''));
  const r = await receiver(N);
  const t0 = performance.now();
  const c = spawn(
    'logger',
    [
      '-n',
      '127.0.0.1',
      '-P',
      String(r.port),
      '-T',
      '--octet-count',
      '--rfc5424',
      '-t',
      'bench',
      '-f',
      file,
    ],
    { stdio: 'inherit' },
  );
  const t1 = await r.done;
  await new Promise((res) => c.on('close', res));
  r.srv.close();
  rmSync(dir, { recursive: true, force: true });
  return (N / (t1 - t0)) * 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const a: number[] = [];
const b: number[] = [];
const c: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  a.push(await ours());
  c.push(await storeOnly());
  b.push(await logger());
}
const oursMed = median(a);
const peerMed = median(b);
console.log(
  table([
    ['sender', `lines/s (median of ${ROUNDS}, ${N} lines)`, 'rounds'],
    [
      'paas syslog+tcp drain (log store → drain)',
      oursMed.toFixed(0),
      a.map((x) => x.toFixed(0)).join(' '),
    ],
    [
      '(log store alone, no drain: the ceiling)',
      median(c).toFixed(0),
      c.map((x) => x.toFixed(0)).join(' '),
    ],
    [
      'logger --tcp --octet-count --rfc5424 -f',
      peerMed.toFixed(0),
      b.map((x) => x.toFixed(0)).join(' '),
    ],
    ['ratio', `${(oursMed / peerMed).toFixed(2)}x`, ''],
  ]),
);

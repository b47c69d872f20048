// Shared benchmark plumbing: hyperfine runs with JSON export, and a table printer.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Timing {
  name: string;
  meanMs: number;
  stddevMs: number;
  medianMs: number;
}

/** Times each command with hyperfine (no shell, warm-up runs first). */
export function hyperfine(commands: Record<string, string>, opts: { runs?: number; warmup?: number; prepare?: string } = {}): Timing[] {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-'));
  const out = join(dir, 'out.json');
  try {
    const args = ['-N', '--style', 'none', '--warmup', String(opts.warmup ?? 5), '--runs', String(opts.runs ?? 30), '--export-json', out];
    if (opts.prepare !== undefined) args.push('--prepare', opts.prepare);
    for (const [name, cmd] of Object.entries(commands)) args.push('-n', name, cmd);
    execFileSync('hyperfine', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const json = JSON.parse(readFileSync(out, 'utf8')) as { results: { command: string; mean: number; stddev: number; median: number }[] };
    return json.results.map((r) => ({ name: r.command, meanMs: r.mean * 1000, stddevMs: r.stddev * 1000, medianMs: r.median * 1000 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function table(rows: (string | number)[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

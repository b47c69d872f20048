// Shared benchmark plumbing: hyperfine runs with JSON export, and a table printer.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Image, ImageStore } from '../src/registry/index.ts';

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

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Flags every build bench takes: `--data-dir DIR --runtime native|runc --runs N`. */
export function buildBenchArgs(tmpPrefix: string): { dataDir: string; ownDataDir: boolean; runtime: string; runs: number } {
  const repo = join(import.meta.dirname, '..');
  const { values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      runtime: { type: 'string', default: existsSync(join(repo, 'native/build/paas-shim')) ? 'native' : 'runc' },
      runs: { type: 'string', default: '3' },
    },
  });
  return {
    dataDir: values['data-dir'] ?? mkdtempSync(`/var/tmp/${tmpPrefix}`),
    ownDataDir: values['data-dir'] === undefined,
    runtime: values.runtime as string,
    runs: Math.max(1, Number(values.runs)),
  };
}

/** Cached OCI layout that provision/base-images writes for a base image, e.g. `node-24`. */
export function baseLayout(name: string): string {
  return join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base', name);
}

/** `ref` from the store, else imported from provision/base-images' cached layout; null when neither exists. */
export async function ensureBaseImage(store: ImageStore, ref: string, layoutName: string): Promise<Image | null> {
  try {
    return await store.resolveImage(ref);
  } catch {
    const layout = baseLayout(layoutName);
    if (!existsSync(join(layout, 'index.json'))) return null;
    return (await store.importOciLayout(layout, [ref]))[0] ?? null;
  }
}

/** A scratch copy of a fixture app, and a way to make a code-only change to its server.js. */
export function fixtureContext(fixture: string, tmpPrefix: string): { dir: string; touchCode: () => void } {
  const dir = mkdtempSync(`/var/tmp/${tmpPrefix}`);
  cpSync(fixture, dir, { recursive: true });
  let version = 0;
  const touchCode = (): void => {
    writeFileSync(join(dir, 'server.js'), `// change ${++version}\n${readFileSync(join(fixture, 'server.js'), 'utf8')}`);
  };
  return { dir, touchCode };
}

// Shared benchmark plumbing: hyperfine runs with JSON export, a table printer, base images,
// and a private Docker engine for the peer figures measured in the same run.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CA_TARGET, caEnv, HOST_CA_BUNDLE } from '../src/builder/index.ts';
import type { Image, ImageStore } from '../src/registry/index.ts';
import { startDockerd, type Dockerd } from '../test/helpers/dockerd.ts';

export type { Dockerd };

export interface Timing {
  name: string;
  meanMs: number;
  stddevMs: number;
  medianMs: number;
}

/** Times each command with hyperfine (no shell, warm-up runs first). */
export function hyperfine(
  commands: Record<string, string>,
  opts: { runs?: number; warmup?: number; prepare?: string; env?: NodeJS.ProcessEnv } = {},
): Timing[] {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-'));
  const out = join(dir, 'out.json');
  try {
    const args = [
      '-N',
      '--style',
      'none',
      '--warmup',
      String(opts.warmup ?? 5),
      '--runs',
      String(opts.runs ?? 30),
      '--export-json',
      out,
    ];
    if (opts.prepare !== undefined) args.push('--prepare', opts.prepare);
    for (const [name, cmd] of Object.entries(commands)) args.push('-n', name, cmd);
    execFileSync('hyperfine', args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: opts.env ?? process.env,
    });
    const json = JSON.parse(readFileSync(out, 'utf8')) as {
      results: { command: string; mean: number; stddev: number; median: number }[];
    };
    return json.results.map((r) => ({
      name: r.command,
      meanMs: r.mean * 1000,
      stddevMs: r.stddev * 1000,
      medianMs: r.median * 1000,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function table(rows: (string | number)[][]): string {
  const widths =
    rows[0]?.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Flags every build bench takes: `--data-dir DIR --runtime native|runc --runs N`. */
export function buildBenchArgs(tmpPrefix: string): {
  dataDir: string;
  ownDataDir: boolean;
  runtime: string;
  runs: number;
} {
  const repo = join(import.meta.dirname, '..');
  const { values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      runtime: {
        type: 'string',
        default: existsSync(join(repo, 'native/build/paas-shim')) ? 'native' : 'runc',
      },
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
export async function ensureBaseImage(
  store: ImageStore,
  ref: string,
  layoutName: string,
): Promise<Image | null> {
  try {
    return await store.resolveImage(ref);
  } catch {
    const layout = baseLayout(layoutName);
    if (!existsSync(join(layout, 'index.json'))) return null;
    return (await store.importOciLayout(layout, [ref]))[0] ?? null;
  }
}

/** A scratch copy of a fixture app, and a way to make a code-only change to its server.js. */
export function fixtureContext(
  fixture: string,
  tmpPrefix: string,
): { dir: string; touchCode: () => void } {
  const dir = mkdtempSync(`/var/tmp/${tmpPrefix}`);
  cpSync(fixture, dir, { recursive: true });
  let version = 0;
  const touchCode = (): void => {
    writeFileSync(
      join(dir, 'server.js'),
      `// change ${++version}\n${readFileSync(join(fixture, 'server.js'), 'utf8')}`,
    );
  };
  return { dir, touchCode };
}

/**
 * Runs `fn` with a private dockerd (test/helpers/dockerd.ts: its own socket and data root,
 * no bridge, no iptables; the host's engine is never touched), stopped afterwards whatever
 * happens, ^C included. When none can start, `fn` gets null and the reason is printed: the
 * bench then shows MEASURED.md's figure, labelled as not from this run.
 */
export async function withDockerd<T>(fn: (d: Dockerd | null) => Promise<T>): Promise<T> {
  let d: Dockerd;
  try {
    d = await startDockerd();
  } catch (e) {
    console.log(
      `docker: no private engine could start, so docker figures are MEASURED.md's, not this run's: ${String(e).split('\n')[0]}`,
    );
    return fn(null);
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    void d.stop().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const version = (await d.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    console.log(`docker: a private dockerd ${version} for this run (test/helpers/dockerd.ts)`);
    return await fn(d);
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await d.stop();
  }
}

/** `docker …` against the engine; its output, or an error with the client's and the engine's complaint. */
export async function docker(
  d: Dockerd,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const r = await d.docker(args, '', env);
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}\n-- dockerd log:\n${d.log().slice(-2000)}`,
    );
  return r.stdout;
}

/**
 * Gives the engine an image from our store under the same name (there is no Docker Hub here):
 * a `docker save` archive of it, then `docker load`. `library/node:24` arrives as `node:24`.
 */
export async function dockerLoad(d: Dockerd, store: ImageStore, ref: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-docker-load-'));
  try {
    const file = join(dir, 'image.tar');
    await store.exportDockerArchive(ref, file);
    await docker(d, ['load', '-q', '-i', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A Dockerfile as docker builds it with what our builder gives every RUN and nothing more:
 * the host's CA bundle read-only at the distro path (a BuildKit secret mount: present for
 * that RUN only, in no layer and no cache key, like our bind mount) and
 * SSL_CERT_FILE/NODE_EXTRA_CA_CERTS/npm_config_cafile pointing at it (build args: env for
 * RUN, kept out of the image config, like our caEnv). npm needs it: egress here goes through
 * a TLS-intercepting proxy whose CA only the host's bundle holds.
 */
function withHostCa(dockerfile: string): { text: string; buildArgs: string[] } {
  if (!existsSync(HOST_CA_BUNDLE)) return { text: dockerfile, buildArgs: [] };
  const env = caEnv();
  const text = dockerfile
    .split('\n')
    .map((line) => {
      if (/^FROM\s/i.test(line))
        return [line, ...Object.keys(env).map((k) => `ARG ${k}`)].join('\n');
      if (/^RUN\s/i.test(line))
        return line.replace(/^RUN\s+/i, `RUN --mount=type=secret,id=hostca,target=${CA_TARGET} `);
      return line;
    })
    .join('\n');
  return {
    text,
    buildArgs: [
      '--secret',
      `id=hostca,src=${HOST_CA_BUNDLE}`,
      ...Object.entries(env).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
    ],
  };
}

/**
 * `docker build --network host` of `context` with `dockerfile` on the same base image as ours
 * (loaded from our store): cold (`--no-cache`), then `runs` times unchanged and after
 * `touchCode`. BuildKit (Docker's builder since 23.0; this engine is 20.10, where
 * DOCKER_BUILDKIT=1 selects it) so RUN can mount the CA bundle.
 */
export async function dockerBuildFigures(
  d: Dockerd,
  store: ImageStore,
  o: { base: string; dockerfile: string; context: string; runs: number; touchCode: () => void },
): Promise<{ cold: number; unchanged: number; codeOnly: number }> {
  await dockerLoad(d, store, o.base);
  const dir = mkdtempSync(join(tmpdir(), 'paas-bench-dockerfile-'));
  try {
    const { text, buildArgs } = withHostCa(o.dockerfile);
    const dockerfile = join(dir, 'Dockerfile');
    // Outside the context, so both builders COPY the very same files.
    writeFileSync(dockerfile, text);
    const once = async (noCache: boolean): Promise<number> => {
      const t = performance.now();
      await docker(
        d,
        [
          'build',
          '--network',
          'host',
          ...(noCache ? ['--no-cache'] : []),
          ...buildArgs,
          '-q',
          '-f',
          dockerfile,
          '-t',
          'paas-bench-build',
          o.context,
        ],
        { DOCKER_BUILDKIT: '1' },
      );
      return (performance.now() - t) / 1000;
    };
    const cold = await once(true);
    const unchanged: number[] = [];
    const codeOnly: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      unchanged.push(await once(false));
      o.touchCode();
      codeOnly.push(await once(false));
    }
    return { cold, unchanged: median(unchanged), codeOnly: median(codeOnly) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `npm ci --omit=dev` of `appDir` straight on the host with an empty npm cache, in seconds
 * (null when it failed). Most of a cold build is this download, and its speed moves between
 * runs more than any builder's; the benches also run it once before timing anything.
 */
export function hostNpmCi(appDir: string): number | null {
  const dir = mkdtempSync('/var/tmp/paas-bench-npm-');
  try {
    cpSync(appDir, dir, { recursive: true });
    const t = performance.now();
    const r = spawnSync(
      'npm',
      ['ci', '--omit=dev', '--no-audit', '--no-fund', '--cache', join(dir, '.npm-cache')],
      { cwd: dir, stdio: 'ignore' },
    );
    return r.status === 0 ? (performance.now() - t) / 1000 : null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

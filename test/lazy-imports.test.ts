// An idle daemon holds only what it serves with (issue 20's footprint: daemon + data plane
// ≤ 100 MB). The libraries of work it may never do — ACME orders, image pulls, SSH sessions,
// git over HTTP, builds, the node plane's proxy — load at their first use. This starts a
// real `paas daemon` with every module it loads recorded (test/fixtures/record-imports.mjs)
// and fails if one of them is loaded at rest.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDataPlane, type DataPlane, type PlaneKind } from '../src/router/index.ts';
import { freePorts, REPO } from './helpers/host.ts';

const PAAS = join(REPO, 'bin', 'paas');

// Never loaded by an idle daemon, on a first start or later. (tar is: the image store reads
// and writes layers with it, and it is small.)
const LAZY = [
  "node's bundled undici",
  'acme-client',
  'undici',
  'http-proxy',
  'node-git-server',
  'dockerfile-ast',
  '@balena/dockerignore',
  'semver', // the base images' and the node buildpack's
];
// Our own modules an idle daemon never loads. The build side loads at the first push or
// service image: the Dockerfile executor behind src/builder's surface, the pipeline's
// receive/build step, the buildpacks and the base images (with semver).
const LAZY_SOURCES = [
  'src/builder/builder.ts',
  'src/builder/parse.ts',
  'src/builder/run.ts',
  'src/builder/layer.ts',
  'src/deploy/build.ts',
  'src/buildpacks/index.ts',
  'src/baseimages/index.ts',
  // Docker Swarm's backend: only `--scheduler swarm` loads it.
  'src/scheduler/swarm.ts',
  // The dashboard: its first request loads it.
  'src/dashboard/index.ts',
  // The image store's imports and exports (archives, OCI layouts).
  'src/registry/docker-archive.ts',
  'src/registry/oci-layout.ts',
  'src/registry/import.ts',
];
// Loaded by a first start only: the SSH host key is made with ssh2, and haproxy's first
// start renders our error pages with handlebars. A restarted daemon loads neither.
const FIRST_START_ONLY = ['ssh2', 'handlebars'];

/** Our modules among the loaded URLs, as repository paths (`src/deploy/index.ts`). */
const sourcesIn = (urls: string[]): Set<string> =>
  new Set(
    urls.flatMap((u) => {
      if (u.includes('/node_modules/')) return [];
      const m = /\/(src\/.+\.ts)$/.exec(u);
      return m === null ? [] : [m[1]!];
    }),
  );

const packagesIn = (urls: string[]): Set<string> =>
  new Set(
    urls.flatMap((u) => {
      const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
      return m === null ? [] : [m[1]!];
    }),
  );

interface Run {
  daemon: ChildProcess;
  sshPort: number;
  cmdline: string;
  /** SIGTERM, wait for the exit, and return the packages the daemon had loaded. */
  stop(): Promise<Set<string>>;
  /** Our modules it had loaded (after stop()). */
  sources(): Set<string>;
}

async function startDaemon(dataDir: string, router: PlaneKind, httpPort: number): Promise<Run> {
  const [apiPort, sshPort] = (await freePorts(2)) as [number, number];
  const daemon = spawn(
    PAAS,
    [
      'daemon',
      '--data-dir',
      dataDir,
      '--api-port',
      String(apiPort),
      '--api-host',
      '127.0.0.1',
      '--http-port',
      String(httpPort),
      '--https-port',
      '0',
      '--ssh-port',
      String(sshPort),
      '--domain',
      'paas.test',
      '--router',
      router,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        NODE_OPTIONS: `--import=${join(REPO, 'test/fixtures/record-imports.mjs')}`,
      },
    },
  );
  let err = '';
  daemon.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => daemon.once('exit', () => r()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (daemon.exitCode !== null) throw new Error(`daemon exited ${daemon.exitCode}: ${err}`);
    const ok = await fetch(`http://127.0.0.1:${apiPort}/api/ping`, {
      headers: {
        authorization: `Bearer ${(() => {
          try {
            return readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
          } catch {
            return '';
          }
        })()}`,
      },
    }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`daemon did not answer: ${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const cmdline = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0').join(' ');
  let sources: Set<string> | undefined;
  return {
    daemon,
    sshPort,
    cmdline,
    async stop() {
      daemon.kill('SIGTERM');
      await exited;
      const list = (tag: string): string[] => {
        const line = err.split('\n').find((l) => l.startsWith(`${tag} `));
        if (line === undefined) throw new Error(`no ${tag} list from the daemon: ${err}`);
        return JSON.parse(line.slice(tag.length + 1)) as string[];
      };
      sources = sourcesIn(list('LOADED'));
      const packages = packagesIn(list('LOADED'));
      // Node's bundled undici (fetch, WebSocket): nothing in the daemon uses them, but an
      // ESM import of node:http loads it (server.ts says why); require('node:http') does not.
      if (list('BUILTINS').includes('NativeModule internal/deps/undici/undici'))
        packages.add("node's bundled undici");
      return packages;
    },
    sources() {
      if (sources === undefined) throw new Error('sources() before stop()');
      return sources;
    },
  };
}

/** The SSH server's banner: ssh2 is loaded by this first connection. */
function sshBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(30_000, () => s.destroy(new Error('no SSH banner')));
    s.once('error', reject);
    s.once('data', (d: Buffer) => {
      s.destroy();
      resolve(d.toString().split('\r\n')[0]!);
    });
  });
}

/** The plane outlives the daemons on purpose; the test ends it. */
async function stopPlane(plane: DataPlane): Promise<void> {
  try {
    await plane.connect();
    await plane.stop();
  } finally {
    plane.close();
  }
}

/** The surfaces it reads at start are loaded (so an empty list cannot pass); LAZY_SOURCES are not. */
function expectNoLazySources(run: Run, when: string): void {
  const sources = run.sources();
  expect(sources).toContain('src/deploy/pipeline.ts');
  expect(sources).toContain('src/builder/index.ts');
  expect(sources).toContain('src/scheduler/index.ts');
  expect(sources).toContain('src/registry/store.ts');
  for (const f of LAZY_SOURCES) expect(sources, `${f} ${when}`).not.toContain(f);
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('an idle daemon', () => {
  it.each(['haproxy', 'node'] as const)(
    'on the %s plane loads none of the libraries, nor our modules, of work it has not done; a restart loads neither ssh2 nor handlebars; an SSH connection loads ssh2',
    async (router) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'paas-lazy-'));
      dirs.push(dataDir);
      const [httpPort] = (await freePorts(1)) as [number];
      const plane = createDataPlane(router, { dataDir, httpPort, domain: 'paas.test' });
      try {
        const first = await startDaemon(dataDir, router, httpPort);
        // The memory flags of bin/paas (README: Footprint) reach the daemon's node.
        expect(first.cmdline).toContain('--max-semi-space-size=1');
        expect(first.cmdline).toContain('--v8-pool-size=1');
        const firstLoaded = await first.stop();
        // What it serves with is recorded, so an empty list cannot pass.
        expect(firstLoaded).toContain('express');
        expect(firstLoaded).toContain('pino');
        for (const p of LAZY) expect(firstLoaded, `${p} on a first start`).not.toContain(p);
        expectNoLazySources(first, 'on a first start');

        // The plane outlived the daemon; the next daemon adopts it.
        const again = await startDaemon(dataDir, router, httpPort);
        let loaded: Set<string> | undefined;
        try {
          expect(await sshBanner(again.sshPort)).toMatch(/^SSH-2\.0-paas/);
        } finally {
          loaded = await again.stop();
        }
        expect(loaded).toContain('ssh2');
        for (const p of [...LAZY, ...FIRST_START_ONLY.filter((x) => x !== 'ssh2')])
          expect(loaded, `${p} after a restart`).not.toContain(p);
        expectNoLazySources(again, 'after a restart');
      } finally {
        await stopPlane(plane);
      }
    },
  );

  it('after a restart, without an SSH connection, holds no ssh2', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'paas-lazy-'));
    dirs.push(dataDir);
    const [httpPort] = (await freePorts(1)) as [number];
    const plane = createDataPlane('haproxy', { dataDir, httpPort, domain: 'paas.test' });
    try {
      await (await startDaemon(dataDir, 'haproxy', httpPort)).stop();
      const loaded = await (await startDaemon(dataDir, 'haproxy', httpPort)).stop();
      for (const p of [...LAZY, ...FIRST_START_ONLY])
        expect(loaded, `${p} after a restart`).not.toContain(p);
    } finally {
      await stopPlane(plane);
    }
  });
});

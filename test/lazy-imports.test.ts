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
];
// Loaded by a first start only: the SSH host key is made with ssh2, and haproxy's first
// start renders our error pages with handlebars. A restarted daemon loads neither.
const FIRST_START_ONLY = ['ssh2', 'handlebars'];

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
      const packages = packagesIn(list('LOADED'));
      // Node's bundled undici (fetch, WebSocket): nothing in the daemon uses them, but an
      // ESM import of node:http loads it (server.ts says why); require('node:http') does not.
      if (list('BUILTINS').includes('NativeModule internal/deps/undici/undici'))
        packages.add("node's bundled undici");
      return packages;
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

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('an idle daemon', () => {
  it.each(['haproxy', 'node'] as const)(
    'on the %s plane loads none of the libraries of work it has not done; a restart loads neither ssh2 nor handlebars; an SSH connection loads ssh2',
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

// Registry benchmark (issue 4): push and pull of one ~50 MB gzip layer with skopeo against
// our registry (express + createRegistryHandler, as the daemon mounts it) and against
// Debian's docker-registry (distribution 2.8), measured in the same run. Each run starts
// both registries on fresh storage so no blob is already there to skip.
//   node bench/registry.ts [--runs 3] [--mb 50]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import express from 'express';
import { basicAuthPassword, createRegistryHandler, openStore } from '../src/registry/index.ts';
import { sha256 } from '../src/registry/digest.ts';
import { makeTar } from '../src/registry/testing.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, mb: { type: 'string', default: '50' } },
});
const RUNS = Number(values.runs);
const TOKEN = 'bench-token';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'paas-bench-registry-'));
const children: ChildProcess[] = [];

function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function timed(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  await run('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

type Peer = {
  name: string;
  host: string;
  creds: string[];
  credsSrc: string[];
  stop: () => Promise<void>;
};

async function startOurs(i: number): Promise<Peer> {
  const store = await openStore(path.join(work, `paas-${i}`));
  const app = express();
  app.use(
    '/v2',
    createRegistryHandler({
      store,
      authenticate: (req) => basicAuthPassword(req) === TOKEN,
      realm: 'paas',
    }),
  );
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    name: 'paas',
    host,
    creds: ['--dest-creds', `x:${TOKEN}`],
    credsSrc: ['--src-creds', `x:${TOKEN}`],
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

async function startPeer(i: number): Promise<Peer> {
  const port = await freePort();
  const dir = path.join(work, `peer-${i}`);
  fs.mkdirSync(dir);
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  children.push(child);
  await waitForPort(port);
  return {
    name: 'docker-registry',
    host: `127.0.0.1:${port}`,
    creds: [],
    credsSrc: [],
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  for (const tool of ['skopeo', 'docker-registry']) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(
        `${tool} is not installed (apt-get install ${tool === 'skopeo' ? 'skopeo' : 'docker-registry'})`,
      );
    });
  }
  // One layer of incompressible bytes, so the gzip blob is ~N MB on the wire.
  const mb = Number(values.mb);
  const entries = [{ path: 'payload.bin', body: randomBytes(mb * 1024 * 1024) }];
  const src = await openStore(path.join(work, 'src'));
  const blob = makeTar(entries);
  const { digest, size } = await src.putBlob(blob);
  await src.commitImage({
    repo: 'bench',
    tag: 'v1',
    base: null,
    newLayers: [{ digest, size, diffId: sha256(makeTar(entries, false)) }],
    config: { Cmd: ['true'] },
  });
  const layout = path.join(work, 'layout');
  await src.exportOciLayout('bench:v1', layout);
  const { stdout: version } = await run('skopeo', ['--version']);

  const results: Record<string, { push: number[]; pull: number[] }> = {
    paas: { push: [], pull: [] },
    'docker-registry': { push: [], pull: [] },
  };
  for (let i = 0; i < RUNS; i++) {
    for (const start of [startOurs, startPeer]) {
      const peer = await start(i);
      try {
        const ref = `docker://${peer.host}/bench/app:v1`;
        results[peer.name]!.push.push(
          await timed(['copy', '--dest-tls-verify=false', ...peer.creds, `oci:${layout}:v1`, ref]),
        );
        const out = path.join(work, `out-${peer.name}-${i}`);
        results[peer.name]!.pull.push(
          await timed(['copy', '--src-tls-verify=false', ...peer.credsSrc, ref, `oci:${out}:v1`]),
        );
        const got = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8')) as {
          manifests: { digest: string }[];
        };
        if (
          !got.manifests.some((m) =>
            fs.existsSync(path.join(out, 'blobs/sha256', m.digest.slice(7))),
          )
        )
          throw new Error(`${peer.name}: pulled layout is incomplete`);
      } finally {
        await peer.stop();
      }
    }
  }
  const ours = results.paas!;
  const peer = results['docker-registry']!;
  const f = (n: number): string => `${n.toFixed(2)} s`;
  console.log(
    `registry bench: one ${(size / 1024 / 1024).toFixed(1)} MB gzip layer, ${version.trim()}, median of ${RUNS} runs`,
  );
  console.log(`                          push       pull`);
  console.log(
    `paas (express handler)   ${f(median(ours.push)).padEnd(10)} ${f(median(ours.pull))}`,
  );
  console.log(
    `docker-registry 2.8      ${f(median(peer.push)).padEnd(10)} ${f(median(peer.pull))}`,
  );
  console.log(
    `ratio paas/peer          ${(median(ours.push) / median(peer.push)).toFixed(2)}x      ${(median(ours.pull) / median(peer.pull)).toFixed(2)}x`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

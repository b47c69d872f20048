// Backing services (issue 21): time from `paas services:create postgres` to a linked app
// answering with a row, on a real daemon: the Node app of the services e2e test
// (test/fixtures/apps/svc-node: `pg`'s Pool on DATABASE_URL) is deployed first; each run
// creates a service, links it (a new release the app redeploys with), inserts a row through
// the app and reads it back. Beside it, `docker run postgres:15` until ready (pg_isready
// exits 0) on a private dockerd (test/helpers/dockerd.ts). Docker Hub is out of reach, so
// the peer's image is a stand-in for the official one: our Debian-built postgres:15
// (`docker load`ed from our store) with test/fixtures/services/postgres-entrypoint.sh as
// its docker-entrypoint.sh, the official image's interface. Drain throughput: bench/drains.
//   node bench/services.ts [--runs N]
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, copyFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { openStore } from '../src/registry/index.ts';
import { appRepo, cli, DOMAIN, get, push, startPaas, type Paas } from '../test/e2e/harness.ts';
import { docker, dockerLoad, median, table, withDockerd, type Dockerd } from './lib.ts';

const repo = path.join(import.meta.dirname, '..');
const CACHE = path.join(process.env.PAAS_CACHE_DIR ?? '/var/cache/paas', 'base');
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Math.max(1, Number(args.runs));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (!existsSync(path.join(CACHE, 'node-22', 'index.json'))) {
  console.log(
    `bench/services: skipped: ${CACHE}/node-22 does not exist; run provision/base-images --data-dir D --only node,postgres`,
  );
  process.exit(0);
}

function post(p: Paas, app: string, pathname: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: p.httpPort,
        method: 'POST',
        path: pathname,
        headers: { host: `${app}.${DOMAIN}` },
        timeout: 20_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function must(p: Paas, argv: string[]): Promise<void> {
  const r = await cli(p, argv);
  if (r.code !== 0) throw new Error(`paas ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
}

/** One run: create → ready, link → redeployed, insert + read → the row; ms each. */
async function oursOnce(
  p: Paas,
  n: number,
): Promise<{ create: number; link: number; row: number }> {
  const name = `bench${n}`;
  const text = `row-${n}`;
  const t0 = performance.now();
  await must(p, ['services:create', 'postgres', name]);
  const t1 = performance.now();
  await must(p, ['services:link', name, 'shop']);
  const t2 = performance.now();
  for (;;) {
    if ((await post(p, 'shop', `/notes?text=${text}`)) === 201) {
      const g = await get(p, 'shop', '/notes');
      if (g.status === 200 && g.body === `${text}\n`) break;
    }
    if (performance.now() - t0 > 300_000) throw new Error('the linked app never answered a row');
    await sleep(20);
  }
  const t3 = performance.now();
  await must(p, ['services:unlink', name, 'shop']);
  await must(p, ['services:destroy', name, '--force']);
  return { create: t1 - t0, link: t2 - t1, row: t3 - t2 };
}

/** `docker run -d` of the stand-in until `pg_isready` in it exits 0; ms each run. */
async function dockerReady(d: Dockerd, p: Paas): Promise<number[]> {
  const store = await openStore(p.dataDir);
  await dockerLoad(d, store, 'library/postgres:15');
  const ctx = mkdtempSync(path.join(tmpdir(), 'paas-bench-pg-standin-'));
  try {
    copyFileSync(
      path.join(repo, 'test/fixtures/services/postgres-entrypoint.sh'),
      path.join(ctx, 'docker-entrypoint.sh'),
    );
    const dockerfile = [
      'FROM postgres:15',
      'COPY docker-entrypoint.sh /usr/local/bin/',
      'USER root',
      'ENTRYPOINT ["docker-entrypoint.sh"]',
      'CMD ["postgres"]',
    ].join('\n');
    await d.docker(['build', '-q', '-t', 'postgres-standin:15', '-f', '-', ctx], dockerfile);
    await docker(d, ['image', 'inspect', 'postgres-standin:15']);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const id = (
      await docker(d, ['run', '-d', '-e', 'POSTGRES_PASSWORD=bench', 'postgres-standin:15'])
    ).trim();
    for (;;) {
      const r = await d.docker(['exec', id, 'pg_isready', '-q', '-h', '/var/run/postgresql']);
      if (r.code === 0) break;
      if (performance.now() - t0 > 300_000) throw new Error(`docker postgres never got ready`);
      await sleep(20);
    }
    ms.push(performance.now() - t0);
    await docker(d, ['rm', '-f', '-v', id]);
  }
  return ms;
}

const p = await startPaas({
  prepare: async (dataDir) => {
    await promisify(execFile)(
      path.join(repo, 'provision', 'base-images'),
      ['--data-dir', dataDir, '--only', 'node,postgres', '--quiet'],
      { timeout: 40 * 60_000, maxBuffer: 64 * 1024 * 1024 },
    );
  },
});
try {
  const first = await push(p, appRepo('svc-node').dir, 'shop');
  if (first.code !== 0) throw new Error(`push failed:\n${first.stderr}`);
  // The first service on a box also unpacks the image's layers (docker load did that for
  // docker before its runs): reported apart, the medians are of the runs after it.
  const cold = await oursOnce(p, 0);
  const ours: { create: number; link: number; row: number }[] = [];
  for (let i = 1; i <= runs; i++) ours.push(await oursOnce(p, i));
  const peer = await withDockerd(async (d) => (d === null ? null : dockerReady(d, p)));

  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const total = ours.map((o) => o.create + o.link + o.row);
  console.log(
    `\nbench/services: medians of ${runs} runs (box load ${(await import('node:os')).loadavg()[0]!.toFixed(1)})`,
  );
  console.log(
    table([
      ['what', 'median', 'runs'],
      [
        'paas services:create postgres → ready',
        s(median(ours.map((o) => o.create))),
        ours.map((o) => s(o.create)).join(', '),
      ],
      [
        'paas services:link → app redeployed',
        s(median(ours.map((o) => o.link))),
        ours.map((o) => s(o.link)).join(', '),
      ],
      [
        'first row written and read through the app',
        s(median(ours.map((o) => o.row))),
        ours.map((o) => s(o.row)).join(', '),
      ],
      ['paas: create → linked app answers a row', s(median(total)), total.map(s).join(', ')],
      [
        'paas, first service on the box (+ unpacking the layers): create / all',
        `${s(cold.create)} / ${s(cold.create + cold.link + cold.row)}`,
        '',
      ],
      ...(peer === null
        ? [['docker run postgres:15 → ready', 'no docker engine in this run', '']]
        : [
            [
              'docker run postgres:15 (stand-in: our image + official-interface entrypoint) → pg_isready',
              s(median(peer)),
              peer.map(s).join(', '),
            ],
          ]),
    ]),
  );
  if (peer !== null)
    console.log(
      `\nratio, services:create → ready vs docker run → ready: ${(median(ours.map((o) => o.create)) / median(peer)).toFixed(2)}x`,
    );
} finally {
  await p.cleanup();
}

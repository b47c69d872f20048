// Pull benchmark (issue 16): time to pull a ~50 MB multi-layer image from Debian's
// docker-registry (distribution 2.8) on loopback into a fresh store with our puller (manifest,
// config, layers in parallel, each digest-verified), beside `skopeo copy` of the same image to
// a fresh OCI layout, in the same run. Neither unpacks layers (both stop at verified blobs).
//   node bench/pull.ts [--runs 5] [--mb 50] [--layers 5]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { openStore } from '../src/registry/index.ts';
import { makeTar } from '../src/registry/testing.ts';
import { pushImage, startDockerRegistry } from '../test/helpers/registry.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    mb: { type: 'string', default: '50' },
    layers: { type: 'string', default: '5' },
  },
});
const RUNS = Number(values.runs);
const LAYERS = Number(values.layers);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'paas-bench-pull-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const reg = await startDockerRegistry();
  try {
    // Incompressible layers, so the gzip blobs are ~N MB on the wire.
    const per = Math.floor((Number(values.mb) * 1024 * 1024) / LAYERS);
    const layers = Array.from({ length: LAYERS }, (_, i) =>
      makeTar([{ path: `layer-${i}.bin`, body: randomBytes(per) }]),
    );
    const total = layers.reduce((n, l) => n + l.length, 0);
    const ref = `${reg.host}/bench/pull:v1`;
    await pushImage(ref, { layers, config: { Cmd: ['true'] } });
    const { stdout: version } = await run('skopeo', ['--version']);

    const ours: number[] = [];
    const peer: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const store = await openStore(path.join(work, `ours-${i}`));
      let t0 = process.hrtime.bigint();
      const img = await store.pullImage(ref);
      ours.push(Number(process.hrtime.bigint() - t0) / 1e9);
      if (img.layers.length !== LAYERS) throw new Error('ours: pulled image is incomplete');

      const out = path.join(work, `skopeo-${i}`);
      t0 = process.hrtime.bigint();
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:v1`]);
      peer.push(Number(process.hrtime.bigint() - t0) / 1e9);
      fs.rmSync(path.join(work, `ours-${i}`), { recursive: true, force: true });
      fs.rmSync(out, { recursive: true, force: true });
    }
    const f = (n: number): string => `${n.toFixed(2)} s`;
    console.log(
      `pull bench: ${LAYERS} gzip layers, ${(total / 1024 / 1024).toFixed(1)} MB, from docker-registry 2.8 on loopback, ${version.trim()}, median of ${RUNS} runs`,
    );
    console.log(
      `paas pull (store.pullImage)   ${f(median(ours))}   runs: ${ours.map(f).join(', ')}`,
    );
    console.log(
      `skopeo copy → oci layout      ${f(median(peer))}   runs: ${peer.map(f).join(', ')}`,
    );
    console.log(`ratio paas/skopeo             ${(median(ours) / median(peer)).toFixed(2)}x`);
  } finally {
    await reg.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

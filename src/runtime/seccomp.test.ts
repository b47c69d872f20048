// The seccomp allowlist (native/seccomp.list) refuses what is not on it, so it must not
// refuse what real programs do. Node 24 on the debian-based node image, on both backends:
// glibc (clone3 → ENOSYS → clone, statx, rseq), libuv's thread pool and epoll, a child
// process, a worker thread, a TCP server on loopback, randomness and a file written.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../registry/index.ts';
import { NATIVE_DIR, tempDir } from '../../test/helpers/host.ts';
import { createRuntime } from './index.ts';
import type { RuntimeName } from './types.ts';

const run = promisify(execFile);
const script = resolve(import.meta.dirname, '../../provision/base-images');
const tmp = tempDir('seccomp-node');
let lowers: string[] = [];

const PROGRAM = `
const { execFileSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const fs = require('node:fs');
const net = require('node:net');
const crypto = require('node:crypto');
fs.writeFileSync('/tmp/f', crypto.randomBytes(16).toString('hex'));
const child = execFileSync('/bin/sh', ['-c', 'echo child-ok']).toString().trim();
new Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true })
  .on('message', (n) => {
    const server = net.createServer((s) => s.end('tcp-ok')).listen(0, '127.0.0.1', () => {
      net.connect(server.address().port, '127.0.0.1').on('data', (d) => {
        console.log([child, n, d.toString(), fs.readFileSync('/tmp/f', 'utf8').length].join(' '));
        server.close();
      });
    });
  });
`;

beforeAll(async () => {
  const dataDir = join(tmp.dir, 'images');
  await run(script, ['--data-dir', dataDir, '--only', 'node', '--quiet'], { timeout: 300_000 });
  const store = await openStore(dataDir);
  lowers = await store.layerDirs(await store.resolveImage('node:24-slim'));
}, 320_000);
afterAll(() => tmp.cleanup());

describe.each(['native', 'runc'] as RuntimeName[])('the seccomp allowlist on %s', (name) => {
  it('keeps node working: threads, child processes, sockets, files', async () => {
    const rt = createRuntime(name, {
      dataDir: join(tmp.dir, name),
      nativeDir: NATIVE_DIR,
      cgroupParent: `paastest-seccomp-${name}`,
    });
    const r = await rt.run(
      {
        rootfs: { lowers },
        command: ['/usr/local/bin/node', '-e', PROGRAM],
        env: { PATH: '/usr/local/bin:/usr/bin:/bin' },
      },
      { stdio: 'pipe' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('child-ok 42 tcp-ok 32');
    expect(r.exitCode).toBe(0);
  }, 120_000);
});

// Test and benchmark support: a throwaway data dir with a store holding busybox (from
// provision/test-rootfs), the runtime the tests run against, and a way to run a built image
// as a deploy would (entrypoint + cmd, env, workdir, user from the image config).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore, type Image, type ImageStore } from '../registry/index.ts';
import { createRuntime, type ProcessResult, type Runtime } from '../runtime/index.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/build');

export type Harness = {
  dataDir: string;
  store: ImageStore;
  runtime: Runtime;
  busybox: Image;
  cleanup(): Promise<void>;
};

/** The runtime backend under test: PAAS_TEST_RUNTIME, else native once native/ is built, else runc. */
export function testRuntimeName(): string {
  return (
    process.env.PAAS_TEST_RUNTIME ??
    (existsSync(path.join(REPO_ROOT, 'native/build/paas-shim')) ? 'native' : 'runc')
  );
}

export async function openHarness(): Promise<Harness> {
  // Under /var/tmp, on the same filesystem as the layer cache, so upper dirs can be adopted.
  const dataDir = mkdtempSync('/var/tmp/paas-build-test-');
  const store = await openStore(dataDir);
  const rootfs = execFileSync(path.join(REPO_ROOT, 'provision/test-rootfs'), {
    encoding: 'utf8',
  }).trim();
  const busybox = await store.importRootfs(rootfs, 'library/busybox:latest', {
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    Cmd: ['sh'],
  });
  const runtime = createRuntime(testRuntimeName(), { dataDir });
  return {
    dataDir,
    store,
    runtime,
    busybox,
    cleanup: async () => {
      for (const c of await runtime.list())
        await runtime.remove(c.id, { force: true }).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Copies a fixture to a fresh directory the test may modify. */
export function fixtureCopy(name: string): string {
  const dir = mkdtempSync('/var/tmp/paas-build-ctx-');
  cpSync(path.join(FIXTURES, name), dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

export function envOf(image: Image): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of image.config.Env ?? []) {
    const i = kv.indexOf('=');
    env[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
  }
  return env;
}

/** Runs the image as a deploy would; `command` replaces entrypoint + cmd when given. */
export async function runImage(
  h: Harness,
  image: Image,
  command?: string[],
): Promise<ProcessResult> {
  const c = image.config;
  return h.runtime.run({
    rootfs: { lowers: await h.store.layerDirs(image) },
    command: command ?? [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
    env: envOf(image),
    cwd: c.WorkingDir || '/',
    user: c.User || '0',
    net: 'none',
  });
}

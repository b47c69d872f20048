// Host-side facts for runtime tests: the cached busybox rootfs, the probe binary, and what
// a container may leave behind (mounts, cgroups, netns, veths).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const NATIVE_DIR = join(REPO, 'native', 'build');
export const PROBE = join(NATIVE_DIR, 'escape-probe');

let rootfs: string | null = null;
/** The busybox test rootfs (built once by provision/test-rootfs). */
export function testRootfs(): string {
  rootfs ??= execFileSync(join(REPO, 'provision', 'test-rootfs'), { encoding: 'utf8' }).trim();
  return rootfs;
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `paas-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(prefix));
}

export function netnsNames(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns') : [];
}

export function links(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

export function cgroupDirs(parent: string): string[] {
  const out: string[] = [];
  for (const c of readdirSync('/sys/fs/cgroup')) {
    const d = join('/sys/fs/cgroup', c, parent);
    if (existsSync(d))
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) out.push(join(c, parent, e.name));
  }
  return out;
}

/** Polls `fn` until it returns something other than null, undefined or false. */
export async function waitFor<T>(
  what: string,
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

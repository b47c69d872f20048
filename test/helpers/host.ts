// Host-side facts for runtime tests: the cached busybox rootfs, the probe binary, and what
// a container may leave behind (mounts, cgroups, netns, veths).
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { filterTable } from '../../src/runtime/firewall.ts';
import { natTable } from '../../src/runtime/network.ts';
import type { Runtime } from '../../src/runtime/types.ts';

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

/**
 * Removes a test's bridge and the nftables tables the runtime made for it (outbound NAT and
 * borders), which outlive the bridge: a NAT table left behind keeps conntrack on for all of
 * the box's traffic. Safe when any of them is missing.
 */
export function dropBridge(bridge: string): void {
  execFileSync('sh', [
    '-c',
    `nft delete table inet ${filterTable(bridge)} 2>/dev/null; nft delete table ip ${natTable(bridge)} 2>/dev/null; ip link del ${bridge} 2>/dev/null; true`,
  ]);
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

/**
 * Keeps a container's cgroup busy the way something the kernel will not let go of does: a
 * mount inside it, which rmdir refuses. Returns the release.
 */
export function pinCgroup(parent: string, id: string): () => void {
  const dir = cgroupDirs(parent).find((d) => d.endsWith(id));
  if (dir === undefined) throw new Error(`no cgroup for ${id} under ${parent}`);
  const pin = join('/sys/fs/cgroup', dir, 'pinned');
  mkdirSync(pin);
  execFileSync('mount', ['-t', 'tmpfs', 'pin', pin]);
  return () => execFileSync('umount', [pin]);
}

/** Polls `fn` until it returns something other than null, undefined or false. */
export async function waitFor<T>(
  what: string,
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 60_000, // a hang guard sized for a busy box, not a speed check
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

/**
 * An "internet" for containers: a network namespace wired to the host by a veth, with its
 * own subnet, routed through the host as the real internet would be, serving HTTP (busybox
 * httpd) on port 8080 with `body`. Traffic from a container reaches it through the bridge's
 * gateway, the host's forwarding and NAT, as it reaches any server out there.
 */
export function internetStandIn(
  name: string,
  octet: number,
  body: string,
): { ip: string; url: string; close: () => void } {
  const ns = `paas-inet-${name}`;
  const host = `vin${name}`.slice(0, 15);
  const hostIp = `198.51.${octet}.1`;
  const ip = `198.51.${octet}.2`;
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe' });
  const unwire = () =>
    sh(
      `ip netns pids ${ns} 2>/dev/null | xargs -r kill -9; ip netns del ${ns} 2>/dev/null; ip link del ${host} 2>/dev/null; true`,
    );
  unwire(); // a previous run that died half-way
  const www = mkdtempSync(join(tmpdir(), `paas-inet-${name}-`));
  writeFileSync(join(www, 'index.html'), body);
  const close = () => {
    unwire();
    rmSync(www, { recursive: true, force: true });
  };
  sh(
    [
      `ip netns add ${ns}`,
      `ip link add ${host} type veth peer name eth0 netns ${ns}`,
      `ip addr add ${hostIp}/24 dev ${host}`,
      `ip link set ${host} up`,
      `ip -n ${ns} link set lo up`,
      `ip -n ${ns} addr add ${ip}/24 dev eth0`,
      `ip -n ${ns} link set eth0 up`,
      `ip -n ${ns} route add default via ${hostIp}`,
      `echo 1 > /proc/sys/net/ipv4/ip_forward`,
    ].join(' && '),
  );
  const bb = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
  const child = spawn('ip', ['netns', 'exec', ns, bb, 'httpd', '-f', '-p', '8080', '-h', www], {
    stdio: 'ignore',
    detached: false,
  });
  child.unref();
  return { ip, url: `http://${ip}:8080/`, close };
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts next). */
/**
 * `n` distinct free ports: all held open at once before any is released, so two calls in a
 * row cannot hand out the same port (the kernel may reuse a just-closed ephemeral port).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Whether a process with this pid runs (a pid file's content, or null when there is none). A
 * zombie has exited: a child of this test process (a plane it started) stays one until Node
 * reaps it, which happens on a later turn of the event loop.
 */
export function alive(pid: number | null): boolean {
  if (pid === null || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * `runtime` with some methods replaced (a wait that fails, an inspect that answers late…);
 * the rest are its own, bound to it.
 */
export function runtimeWith(runtime: Runtime, over: Partial<Runtime>): Runtime {
  return new Proxy(runtime, {
    get: (target, key) => {
      if (Object.hasOwn(over, key)) return Reflect.get(over, key);
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

// Container networking: one Linux bridge, a network namespace and a veth pair per container,
// and IP leases persisted in SQLite so a restarted daemon never hands out an address twice.
// Namespaces are created with iproute2 (`ip netns add`, a bind mount under /run/netns), so
// both backends simply join them by path.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { promisify } from 'node:util';
import { InvalidSpec, RuntimeError } from '../errors/index.ts';
import { applyBorders } from './firewall.ts';

const run = promisify(execFile);

/**
 * Where IP leases live. The bridge and its subnet belong to the host, not to one data dir,
 * so two daemons (or a daemon and `paas container:run`) with different data dirs must see
 * the same leases or they hand out the same address.
 */
export const DEFAULT_NETWORK_STATE_DIR = '/var/lib/paas-net';

export interface NetworkOptions {
  /** Directory of the lease database (default DEFAULT_NETWORK_STATE_DIR). */
  stateDir?: string;
  bridge?: string;
  subnet?: string;
}

export interface Attachment {
  netnsPath: string;
  ip: string;
  gateway: string;
  prefix: number;
}

export type NatMode = 'nftables' | 'iptables' | 'skipped';

function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new InvalidSpec(`subnet: "${ip}" is not an IPv4 address`, { field: 'subnet' });
  return (
    (((p[0] as number) << 24) |
      ((p[1] as number) << 16) |
      ((p[2] as number) << 8) |
      (p[3] as number)) >>>
    0
  );
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseSubnet(cidr: string): { base: number; prefix: number; size: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (m === null)
    throw new InvalidSpec(`subnet: "${cidr}" is not CIDR (example 10.77.0.0/16)`, {
      field: 'subnet',
    });
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 29)
    throw new InvalidSpec(`subnet: prefix /${prefix} must be between /8 and /29`, {
      field: 'subnet',
    });
  const size = 2 ** (32 - prefix);
  const base = (ipToInt(m[1] as string) & ~(size - 1)) >>> 0;
  return { base, prefix, size };
}

/** /sys/class/net/<dev>/addr_assign_type of an address set by the operator (not inherited). */
const NET_ADDR_SET = '3';

/**
 * A MAC derived from the IP (locally administered, as Docker's 02:42:…): a reused address
 * keeps its MAC, so neighbours' ARP entries for it stay right when a container is replaced.
 */
export function macFor(ip: string): string {
  return ['02', '42', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(
    ':',
  );
}

export function netnsName(id: string): string {
  return `paas-${id}`;
}

/** Host-side veth name: IFNAMSIZ is 16 including the NUL, so a short hash of the id. */
export function hostVethName(id: string): string {
  return `vp${createHash('sha256').update(id).digest('hex').slice(0, 12)}`;
}

/** The nftables table that holds a bridge's outbound NAT. */
export const natTable = (bridge: string): string => `paas_${bridge.replace(/[^a-zA-Z0-9_]/g, '_')}`;

export class Network {
  readonly bridge: string;
  readonly subnet: string;
  private readonly db: DatabaseSync;
  private readonly net: { base: number; prefix: number; size: number };
  /** The last full ensureBridge: every container create asks, and it costs four spawns. */
  private ensured: { nat: boolean; done: Promise<NatMode>; settled: boolean } | null = null;

  constructor(opts: NetworkOptions) {
    this.bridge = opts.bridge ?? 'paas0';
    this.subnet = opts.subnet ?? '10.77.0.0/16';
    if (!/^[a-zA-Z0-9_-]{1,15}$/.test(this.bridge))
      throw new InvalidSpec(`bridge: "${this.bridge}" is not an interface name`, {
        field: 'bridge',
      });
    this.net = parseSubnet(this.subnet);
    const stateDir = opts.stateDir ?? DEFAULT_NETWORK_STATE_DIR;
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(join(stateDir, 'leases.db'));
    this.db.exec(`PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000;
      CREATE TABLE IF NOT EXISTS leases (bridge TEXT NOT NULL, ip TEXT NOT NULL, container TEXT NOT NULL UNIQUE, created TEXT NOT NULL, PRIMARY KEY (bridge, ip));
      CREATE TABLE IF NOT EXISTS public_ports (bridge TEXT NOT NULL, owner TEXT NOT NULL, port INTEGER NOT NULL, PRIMARY KEY (bridge, owner, port))`);
  }

  /**
   * Declares the host ports a container may open a connection to: the router's public
   * ports (firewall.ts says why). Kept with the leases because every daemon and runtime
   * sharing the bridge re-applies its borders and must keep the others' ports open; `owner`
   * is the declaring daemon's data dir, so a daemon that moves ports replaces its own, and
   * one whose data dir is gone (a finished test) loses them. Applied by the next full
   * `ensureBridge`.
   */
  setPublicPorts(owner: string, ports: readonly number[]): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.db
        .prepare('DELETE FROM public_ports WHERE bridge = ? AND owner = ?')
        .run(this.bridge, owner);
      const add = this.db.prepare(
        'INSERT OR IGNORE INTO public_ports (bridge, owner, port) VALUES (?, ?, ?)',
      );
      for (const port of ports) add.run(this.bridge, owner, port);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    this.ensured = null;
  }

  /** The public ports of live owners, dropping those whose data dir is gone. */
  publicPorts(): number[] {
    const rows = this.db
      .prepare('SELECT DISTINCT owner FROM public_ports WHERE bridge = ?')
      .all(this.bridge) as { owner: string }[];
    for (const { owner } of rows)
      if (!existsSync(owner))
        this.db
          .prepare('DELETE FROM public_ports WHERE bridge = ? AND owner = ?')
          .run(this.bridge, owner);
    return (
      this.db
        .prepare('SELECT DISTINCT port FROM public_ports WHERE bridge = ? ORDER BY port')
        .all(this.bridge) as { port: number }[]
    ).map((r) => r.port);
  }

  get gateway(): string {
    return intToIp(this.net.base + 1);
  }

  close(): void {
    this.db.close();
  }

  /**
   * Creates the bridge (fixed MAC, gateway address, up), outbound NAT where missing, and the
   * containers' borders (firewall.ts), re-applied on every full check so a daemon start
   * restores them. A full check runs once per instance; later calls only look at sysfs
   * that the bridge is still there, up and with its MAC, and redo the setup when it is not.
   */
  ensureBridge(opts: { nat?: boolean } = {}): Promise<NatMode> {
    const nat = opts.nat !== false;
    const e = this.ensured;
    // Concurrent creates share one setup in progress.
    if (e !== null && (e.nat || !nat) && (!e.settled || this.bridgeIntact())) return e.done;
    const done = this.setUpBridge(nat);
    const entry = { nat, done, settled: false };
    this.ensured = entry;
    done.then(
      () => (entry.settled = true),
      () => {
        if (this.ensured === entry) this.ensured = null;
      },
    );
    return done;
  }

  private bridgeIntact(): boolean {
    const sys = `/sys/class/net/${this.bridge}`;
    try {
      // IFF_UP is bit 0 of the interface flags.
      return (
        (Number(readFileSync(`${sys}/flags`, 'utf8')) & 1) === 1 &&
        readFileSync(`${sys}/address`, 'utf8').trim() === macFor(this.gateway)
      );
    } catch {
      return false;
    }
  }

  private async setUpBridge(nat: boolean): Promise<NatMode> {
    const gw = `${this.gateway}/${this.net.prefix}`;
    const exists = await run('ip', ['link', 'show', this.bridge]).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await run('ip', ['link', 'add', this.bridge, 'type', 'bridge']).catch(async (e: unknown) => {
        // a concurrent creator won the race
        if (
          !(await run('ip', ['link', 'show', this.bridge]).then(
            () => true,
            () => false,
          ))
        )
          throw e;
      });
    }
    // A bridge without an address of its own takes the lowest MAC among its ports, so each
    // veth that joins or leaves can change it. Containers then send to a gateway MAC that no
    // longer exists until their ARP entry goes stale: connections to the host stall for
    // seconds in the middle of a deploy. A fixed address (as Docker sets) never moves.
    const mac = macFor(this.gateway);
    const sys = `/sys/class/net/${this.bridge}`;
    if (
      readFileSync(`${sys}/address`, 'utf8').trim() !== mac ||
      readFileSync(`${sys}/addr_assign_type`, 'utf8').trim() !== NET_ADDR_SET
    ) {
      await run('ip', ['link', 'set', this.bridge, 'address', mac]);
    }
    const addrs = (await run('ip', ['-o', '-4', 'addr', 'show', 'dev', this.bridge])).stdout;
    if (!addrs.includes(` ${gw} `))
      await run('ip', ['addr', 'add', gw, 'dev', this.bridge]).catch(() => undefined);
    await run('ip', ['link', 'set', this.bridge, 'up']);
    const mode = nat ? await this.ensureNat() : 'skipped';
    await applyBorders(this.bridge, this.publicPorts());
    return mode;
  }

  /** Outbound NAT for the subnet; optional, because a box may have neither nft nor iptables. */
  private async ensureNat(): Promise<NatMode> {
    try {
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    } catch {
      // read-only /proc/sys: NAT below still helps host→container; forwarding stays as it is
    }
    const table = natTable(this.bridge);
    const ruleset = `table ip ${table} {}\ndelete table ip ${table}\ntable ip ${table} {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr ${this.subnet} oifname != "${this.bridge}" masquerade\n  }\n}\n`;
    const nft = await new Promise<boolean>((resolve) => {
      const child = execFile('nft', ['-f', '-'], (err) => resolve(err === null));
      child.stdin?.end(ruleset);
    });
    if (nft) return 'nftables';
    const rule = ['POSTROUTING', '-s', this.subnet, '!', '-o', this.bridge, '-j', 'MASQUERADE'];
    const has = await run('iptables', ['-t', 'nat', '-C', ...rule]).then(
      () => true,
      () => false,
    );
    if (has) return 'iptables';
    const added = await run('iptables', ['-t', 'nat', '-A', ...rule]).then(
      () => true,
      () => false,
    );
    if (added) return 'iptables';
    process.emitWarning(
      `network: neither nftables nor iptables worked; containers on ${this.bridge} have no outbound NAT`,
    );
    return 'skipped';
  }

  /** Reserves the lowest free address for a container (idempotent per container). */
  lease(container: string): string {
    const existing = this.db.prepare('SELECT ip FROM leases WHERE container = ?').get(container) as
      { ip: string } | undefined;
    if (existing !== undefined) return existing.ip;
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.dropStale();
      const used = new Set(
        (
          this.db.prepare('SELECT ip FROM leases WHERE bridge = ?').all(this.bridge) as {
            ip: string;
          }[]
        ).map((r) => r.ip),
      );
      for (let i = 2; i < this.net.size - 1; i++) {
        const ip = intToIp(this.net.base + i);
        if (used.has(ip)) continue;
        this.db
          .prepare('INSERT INTO leases (ip, container, bridge, created) VALUES (?, ?, ?, ?)')
          .run(ip, container, this.bridge, new Date().toISOString());
        this.db.exec('COMMIT');
        return ip;
      }
      throw new RuntimeError(`network: no free address left in ${this.subnet}`);
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /**
   * Leases whose netns is gone belong to containers that died without cleanup (a crashed
   * test, a wiped data dir); a minute's grace covers a lease taken just before its netns.
   */
  private dropStale(): void {
    const cutoff = new Date(Date.now() - 60_000).toISOString();
    const old = this.db
      .prepare('SELECT container FROM leases WHERE bridge = ? AND created < ?')
      .all(this.bridge, cutoff) as { container: string }[];
    for (const { container } of old) {
      if (!existsSync(`/run/netns/${netnsName(container)}`))
        this.db.prepare('DELETE FROM leases WHERE container = ?').run(container);
    }
  }

  release(container: string): void {
    this.db.prepare('DELETE FROM leases WHERE container = ?').run(container);
  }

  leases(): { ip: string; container: string }[] {
    return this.db
      .prepare('SELECT ip, container FROM leases WHERE bridge = ? ORDER BY ip')
      .all(this.bridge) as { ip: string; container: string }[];
  }

  /** A fresh netns with lo up, a veth into the bridge and the container's address. */
  async attach(container: string): Promise<Attachment> {
    const ip = this.lease(container);
    const ns = netnsName(container);
    const veth = hostVethName(container);
    try {
      // Two spawns of ip for the whole attachment: it is on every container's start path.
      await ipBatch(
        [],
        [
          `netns add ${ns}`,
          `link add ${veth} type veth peer name eth0 netns ${ns} address ${macFor(ip)}`,
          `link set ${veth} master ${this.bridge}`,
          // firewall.ts: no frame passes between two isolated ports of the bridge.
          `link set ${veth} type bridge_slave isolated on`,
          `link set ${veth} up`,
        ],
      );
      await ipBatch(
        ['-n', ns],
        [
          'link set lo up',
          `addr add ${ip}/${this.net.prefix} dev eth0`,
          'link set eth0 up',
          `route add default via ${this.gateway}`,
        ],
      );
    } catch (e) {
      await this.detach(container);
      throw new RuntimeError(`network: attaching ${container} failed: ${(e as Error).message}`);
    }
    return { netnsPath: `/run/netns/${ns}`, ip, gateway: this.gateway, prefix: this.net.prefix };
  }

  /** A fresh netns with only lo up (net: none for the runc backend). */
  async isolated(container: string): Promise<string> {
    const ns = netnsName(container);
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return `/run/netns/${ns}`;
  }

  /** Removes the netns (which destroys both veth ends) and the lease; safe to call twice. */
  async detach(container: string): Promise<void> {
    const ns = netnsName(container);
    if (existsSync(`/run/netns/${ns}`))
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await run('ip', ['link', 'del', hostVethName(container)]).catch(() => undefined);
    this.release(container);
  }
}

async function ipBatch(global: string[], lines: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', [...global, '-batch', '-'], (err, _out, stderr) => {
      if (err !== null) reject(new Error(stderr.trim() || err.message));
      else resolve();
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}

/** /etc/hosts and /etc/resolv.conf for a container, written into its bundle. */
export function writeNetFiles(
  bundle: string,
  hostname: string,
  ip: string | null,
): { hosts: string; resolv: string } {
  const hosts = join(bundle, 'hosts');
  const resolv = join(bundle, 'resolv.conf');
  writeFileSync(
    hosts,
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${ip ?? '127.0.1.1'}\t${hostname}\n`,
  );
  let text = '';
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    text = '';
  }
  // A stub resolver on the host's loopback cannot be reached from another netns.
  const lines = text.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l));
  writeFileSync(resolv, lines.join('\n'));
  return { hosts, resolv };
}

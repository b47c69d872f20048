// The borders of containers on a bridge, beside its outbound NAT (network.ts). A container
// may open connections to the internet (forwarded out of any other interface) and to DNS;
// it may not open one to the host (any of its addresses: the API, the router's internals,
// sshd, whatever listens on 0.0.0.0 or ::) nor to another container, of its own app or
// another: Heroku's dynos cannot reach each other either. The one exception is the router's
// public ports (HTTP, HTTPS): an app calls another app by its public URL, as a dyno calls
// another app through the internet, and that URL resolves to an address of this host. The
// router gives it nothing the internet does not get. The host still opens connections to
// containers (the router, health checks) and their replies come back as established.
//
// Two mechanisms, each closing what the other cannot see:
// - the bridge port of every container is `isolated` (bridge(8)): the bridge never passes a
//   frame from one isolated port to another, so neighbours on the same L2 segment are
//   unreachable whatever br_netfilter does; only the bridge's own (host) side talks to them;
// - netfilter, in the `inet` family so IPv6 (the bridge's link-local address) is covered:
//   `input` drops new traffic from the bridge to the host, and `forward` drops new traffic
//   into the bridge, which covers a container that hairpins through the gateway to reach a
//   neighbour (forged with raw sockets, or routed from another paas bridge on the host).
// Rules are replaced atomically and are the same for every daemon sharing the bridge, so
// any of them may re-apply them at any time.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors/index.ts';

const run = promisify(execFile);

export type FirewallMode = 'nftables' | 'iptables';

export function filterTable(bridge: string): string {
  return `paas_filter_${bridge.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

/**
 * Resolvers of the host's /etc/resolv.conf that are addresses of the host itself (a
 * dnsmasq on the LAN address, say): containers use them (writeNetFiles), so port 53 on those
 * stays open. Loopback ones are dropped from the containers' resolv.conf anyway.
 */
export function resolversOnHost(
  resolvConf: string,
  hostAddrs: readonly string[],
): { v4: string[]; v6: string[] } {
  const local = new Set(hostAddrs);
  const out = { v4: [] as string[], v6: [] as string[] };
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const ip = m?.[1];
    if (ip === undefined || !local.has(ip)) continue;
    if (ip.includes(':')) out.v6.push(ip);
    else out.v4.push(ip);
  }
  return out;
}

function hostDnsResolvers(): { v4: string[]; v6: string[] } {
  let text = '';
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return { v4: [], v6: [] };
  }
  const addrs = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal)
    .map((a) => a!.address);
  return resolversOnHost(text, addrs);
}

/** The nftables ruleset of one bridge's borders (replaces the table as a whole). */
export function nftRuleset(
  bridge: string,
  dns: { v4: string[]; v6: string[] },
  publicPorts: readonly number[] = [],
): string {
  const t = filterTable(bridge);
  const br = `"${bridge}"`;
  const dnsRules = [
    ...(dns.v4.length > 0
      ? [
          `    iifname ${br} ip daddr { ${dns.v4.join(', ')} } meta l4proto { tcp, udp } th dport 53 accept`,
        ]
      : []),
    ...(dns.v6.length > 0
      ? [
          `    iifname ${br} ip6 daddr { ${dns.v6.join(', ')} } meta l4proto { tcp, udp } th dport 53 accept`,
        ]
      : []),
  ];
  return [
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  chain input {`,
    `    type filter hook input priority filter; policy accept;`,
    `    iifname ${br} ct state established,related accept`,
    ...dnsRules,
    ...(publicPorts.length > 0
      ? [`    iifname ${br} tcp dport { ${publicPorts.join(', ')} } accept`]
      : []),
    `    iifname ${br} drop`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    oifname ${br} ct state established,related accept`,
    `    oifname ${br} drop`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

function nft(ruleset: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = execFile('nft', ['-f', '-'], (err) => resolve(err === null));
    child.stdin?.end(ruleset);
  });
}

/** The same borders with iptables/ip6tables, for hosts without nft: own chains, jumped to once. */
export async function iptablesBorders(
  bridge: string,
  dns: { v4: string[]; v6: string[] },
  publicPorts: readonly number[] = [],
) {
  const chainIn = `PAAS-IN-${bridge}`;
  const chainFwd = `PAAS-FWD-${bridge}`;
  for (const [cmd, resolvers] of [
    ['iptables', dns.v4],
    ['ip6tables', dns.v6],
  ] as const) {
    const ipt = (...a: string[]) => run(cmd, ['-w', ...a]);
    for (const chain of [chainIn, chainFwd]) {
      await ipt('-N', chain).catch(() => undefined); // exists already
      await ipt('-F', chain);
    }
    const est = ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN'];
    await ipt('-A', chainIn, ...est);
    for (const ip of resolvers)
      for (const proto of ['udp', 'tcp'])
        await ipt('-A', chainIn, '-d', ip, '-p', proto, '--dport', '53', '-j', 'RETURN');
    for (const port of publicPorts)
      await ipt('-A', chainIn, '-p', 'tcp', '--dport', String(port), '-j', 'RETURN');
    await ipt('-A', chainIn, '-j', 'DROP');
    await ipt('-A', chainFwd, ...est);
    await ipt('-A', chainFwd, '-j', 'DROP');
    for (const jump of [
      ['INPUT', '-i', bridge, '-j', chainIn],
      ['FORWARD', '-o', bridge, '-j', chainFwd],
    ]) {
      const has = await ipt('-C', ...jump).then(
        () => true,
        () => false,
      );
      if (!has) await ipt('-I', jump[0] as string, '1', ...jump.slice(1));
    }
  }
}

/**
 * Installs (or re-installs) the borders of `bridge`: netfilter rules, and isolation of every
 * port already on it (containers attached before these rules existed, or by an older paas).
 * nftables where it works, else iptables; neither is an error: a bridge without borders
 * lets any app reach every other and the host's private ports.
 */
export async function applyBorders(
  bridge: string,
  publicPorts: readonly number[] = [],
): Promise<FirewallMode> {
  isolatePorts(bridge);
  const dns = hostDnsResolvers();
  if (await nft(nftRuleset(bridge, dns, publicPorts))) return 'nftables';
  try {
    await iptablesBorders(bridge, dns, publicPorts);
    return 'iptables';
  } catch (e) {
    throw new RuntimeError(
      `network: cannot install the container firewall on ${bridge} with nft or iptables (${(e as Error).message.trim()}); install nftables`,
    );
  }
}

/** Sets `isolated` on every port of the bridge (sysfs: one write per port, no spawn). */
export function isolatePorts(bridge: string): void {
  let ports: string[];
  try {
    ports = readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch {
    return;
  }
  for (const port of ports) {
    const f = `/sys/class/net/${bridge}/brif/${port}/isolated`;
    try {
      if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1');
    } catch {
      // the port left the bridge meanwhile
    }
  }
}

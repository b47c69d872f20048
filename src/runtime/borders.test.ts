// The borders of a container (firewall.ts), with real containers on a real bridge: it
// reaches the internet (a stand-in server in a network namespace routed through the host),
// but neither another container, of another app or of its own, nor any port of the host;
// the host (where the router runs) still reaches a container's web port.
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dropBridge,
  internetStandIn,
  NATIVE_DIR,
  tempDir,
  testRootfs,
  waitFor,
} from '../../test/helpers/host.ts';
import { filterTable, iptablesBorders, nftRuleset, resolversOnHost } from './firewall.ts';
import { createRuntime, Network } from './index.ts';
import { hostVethName } from './network.ts';
import type { ContainerInfo, Runtime } from './types.ts';

const BRIDGE = 'paasbd0';
const SUBNET = '10.81.0.0/24';
const GATEWAY = '10.81.0.1';
const OTHER_BRIDGE = 'paasbd1';

const sh = (s: string) => execFileSync('sh', ['-c', s], { encoding: 'utf8' });

describe('borders of a container on the bridge', () => {
  const tmp = tempDir('borders');
  let rt: Runtime;
  let inet: ReturnType<typeof internetStandIn>;
  let host: Server;
  let hostPort = 0;
  let web: ContainerInfo; // app b's web process
  let sibling: ContainerInfo; // another process of app b
  let attacker: ContainerInfo; // app a

  /** What a container gets from `url`: the body, or UNREACHABLE (bounded: 4 s). */
  const fetchFrom = async (c: ContainerInfo, url: string): Promise<string> => {
    const r = await rt.exec(c.id, {
      command: ['sh', '-c', `timeout 4 wget -q -O - "${url}" 2>/dev/null || echo UNREACHABLE`],
    });
    return r.stdout.trim();
  };

  beforeAll(async () => {
    rt = createRuntime('native', {
      dataDir: tmp.dir,
      nativeDir: NATIVE_DIR,
      bridge: BRIDGE,
      subnet: SUBNET,
      networkStateDir: tmp.dir,
      cgroupParent: 'paastest-borders',
    });
    inet = internetStandIn('bd', 81, 'hello from the internet\n');
    // A private service of the host, on every address (as sshd or an API on 0.0.0.0 / ::).
    host = createServer((_req, res) => res.end('host secret\n'));
    await new Promise<void>((r) => host.listen(0, '::', r));
    hostPort = (host.address() as { port: number }).port;
    const start = async (labels: Record<string, string>, command: string[]) => {
      const c = await rt.create({
        rootfs: { lowers: [testRootfs()] },
        command,
        net: 'bridge',
        labels,
      });
      return rt.start(c.id);
    };
    web = await start({ app: 'b' }, [
      'sh',
      '-c',
      'mkdir -p /www && echo "b web" > /www/index.html && exec httpd -f -p 5000 -h /www',
    ]);
    sibling = await start({ app: 'b' }, ['sleep', '600']);
    attacker = await start({ app: 'a' }, ['sleep', '600']);
    await waitFor('b web to serve the host', () =>
      fetch(`http://${web.ip}:5000/`).then(
        (r) => r.ok,
        () => false,
      ),
    );
  });

  afterAll(async () => {
    for (const c of await rt.list()) await rt.remove(c.id, { force: true }).catch(() => undefined);
    host?.close();
    inet?.close();
    // The bridge and its tables are this test's own.
    for (const br of [BRIDGE, OTHER_BRIDGE]) dropBridge(br);
    tmp.cleanup();
  });

  it('reaches the internet through the host', async () => {
    expect(await fetchFrom(attacker, inet.url)).toBe('hello from the internet');
  });

  it("cannot open a connection to another app's container, nor to one of its own app", async () => {
    expect(await fetchFrom(attacker, `http://${web.ip}:5000/`)).toBe('UNREACHABLE');
    expect(await fetchFrom(sibling, `http://${web.ip}:5000/`)).toBe('UNREACHABLE');
  });

  it('cannot reach a container from another paas bridge of the host, routed through it', async () => {
    const other = createRuntime('native', {
      dataDir: tmp.dir,
      nativeDir: NATIVE_DIR,
      bridge: OTHER_BRIDGE,
      subnet: '10.82.0.0/24',
      networkStateDir: tmp.dir,
      cgroupParent: 'paastest-borders',
    });
    const c = await other.create({
      rootfs: { lowers: [testRootfs()] },
      command: ['sleep', '600'],
      net: 'bridge',
    });
    await other.start(c.id);
    try {
      const r = await other.exec(c.id, {
        command: [
          'sh',
          '-c',
          `timeout 4 wget -q -O - "http://${web.ip}:5000/" 2>/dev/null || echo UNREACHABLE`,
        ],
      });
      expect(r.stdout.trim()).toBe('UNREACHABLE');
      // …while the internet is still there for it.
      const ok = await other.exec(c.id, {
        command: ['sh', '-c', `timeout 4 wget -q -O - "${inet.url}" || echo UNREACHABLE`],
      });
      expect(ok.stdout.trim()).toBe('hello from the internet');
    } finally {
      await other.remove(c.id, { force: true });
    }
  });

  it('cannot open a connection to any address of the host: the gateway, the LAN address, IPv6 link-local', async () => {
    // The listener is up: the host itself reaches it on the gateway address.
    expect(await fetch(`http://${GATEWAY}:${hostPort}/`).then((r) => r.text())).toBe(
      'host secret\n',
    );
    expect(await fetchFrom(attacker, `http://${GATEWAY}:${hostPort}/`)).toBe('UNREACHABLE');
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && !a.internal && a.family === 'IPv4' && a.address !== GATEWAY);
    if (lan !== undefined)
      expect(await fetchFrom(attacker, `http://${lan.address}:${hostPort}/`)).toBe('UNREACHABLE');
    expect(await fetchFrom(attacker, `http://${inet.ip.replace(/\.2$/, '.1')}:${hostPort}/`)).toBe(
      'UNREACHABLE',
    );
    // The bridge's IPv6 link-local address: the container has one on eth0 too.
    const ll = /inet6 (fe80::[0-9a-f:]+)\//.exec(sh(`ip -6 addr show dev ${BRIDGE} scope link`));
    if (ll !== null) {
      const r = await rt.exec(attacker.id, {
        command: [
          'sh',
          '-c',
          `echo | timeout 4 nc ${ll[1]}%eth0 ${hostPort} >/dev/null 2>&1 && echo CONNECTED || echo UNREACHABLE`,
        ],
      });
      expect(r.stdout.trim()).toBe('UNREACHABLE');
    }
  });

  it("the host (the router's side) still reaches a web process", async () => {
    expect(await fetch(`http://${web.ip}:5000/`).then((r) => r.text())).toBe('b web\n');
  });

  it('re-applies itself idempotently: one rule set, and ports attached before it are isolated again', async () => {
    const veth = hostVethName(attacker.id);
    const isolated = `/sys/class/net/${BRIDGE}/brif/${veth}/isolated`;
    expect(sh(`cat ${isolated}`).trim()).toBe('1');
    sh(`echo 0 > ${isolated}`); // as a port attached by a paas without borders
    for (let i = 0; i < 2; i++) {
      const n = new Network({ stateDir: tmp.dir, bridge: BRIDGE, subnet: SUBNET });
      await n.ensureBridge();
      n.close();
    }
    expect(sh(`cat ${isolated}`).trim()).toBe('1');
    const table = sh(`nft list table inet ${filterTable(BRIDGE)}`);
    expect(table.match(/iifname "paasbd0" drop/g)).toHaveLength(1);
    expect(table.match(/oifname "paasbd0" drop/g)).toHaveLength(1);
    expect(await fetchFrom(attacker, `http://${web.ip}:5000/`)).toBe('UNREACHABLE');
  });

  it("reaches the router's public ports on the host, and no other port", async () => {
    // As the router: a listener on every address, whose port the daemon declares public.
    const router = createServer((_req, res) => res.end('router\n'));
    await new Promise<void>((r) => router.listen(0, '::', r));
    const port = (router.address() as { port: number }).port;
    try {
      expect(await fetchFrom(attacker, `http://${GATEWAY}:${port}/`)).toBe('UNREACHABLE');
      const gone = tempDir('borders-owner'); // a daemon whose data dir is later removed
      const n = new Network({ stateDir: tmp.dir, bridge: BRIDGE, subnet: SUBNET });
      try {
        n.setPublicPorts(tmp.dir, [port]);
        n.setPublicPorts(gone.dir, [hostPort]);
        gone.cleanup();
        await n.ensureBridge();
        expect(n.publicPorts()).toEqual([port]);
      } finally {
        n.close();
      }
      expect(await fetchFrom(attacker, `http://${GATEWAY}:${port}/`)).toBe('router');
      expect(await fetchFrom(attacker, `http://${GATEWAY}:${hostPort}/`)).toBe('UNREACHABLE');
      // Another runtime re-applying the borders (a container create) keeps the port open.
      const again = new Network({ stateDir: tmp.dir, bridge: BRIDGE, subnet: SUBNET });
      try {
        await again.ensureBridge();
      } finally {
        again.close();
      }
      expect(await fetchFrom(attacker, `http://${GATEWAY}:${port}/`)).toBe('router');
      expect(await fetchFrom(attacker, `http://${web.ip}:5000/`)).toBe('UNREACHABLE');
    } finally {
      router.close();
    }
  });

  it('keeps DNS open only on resolvers that are addresses of the host', () => {
    const conf =
      'nameserver 127.0.0.53\nnameserver 192.0.2.2\nnameserver 9.9.9.9\nnameserver fd00::2\n';
    const dns = resolversOnHost(conf, ['192.0.2.2', 'fd00::2', '10.81.0.1']);
    expect(dns).toEqual({ v4: ['192.0.2.2'], v6: ['fd00::2'] });
    expect(nftRuleset('paas0', dns)).toContain(
      'iifname "paas0" ip daddr { 192.0.2.2 } meta l4proto { tcp, udp } th dport 53 accept',
    );
    expect(nftRuleset('paas0', { v4: [], v6: [] })).not.toContain('dport 53');
    expect(nftRuleset('paas0', dns, [80, 443])).toContain(
      'iifname "paas0" tcp dport { 80, 443 } accept',
    );
  });
});

describe('borders with iptables (hosts without nft)', () => {
  const tmp = tempDir('borders-ipt');
  const bridge = 'paasbd2';
  let rt: Runtime;
  let inet: ReturnType<typeof internetStandIn>;
  let host: Server;
  let hostPort = 0;
  const dropIptables = () =>
    sh(
      ['iptables', 'ip6tables']
        .map(
          (t) =>
            `${t} -w -D INPUT -i ${bridge} -j PAAS-IN-${bridge} 2>/dev/null; ${t} -w -D FORWARD -o ${bridge} -j PAAS-FWD-${bridge} 2>/dev/null; ${t} -w -F PAAS-IN-${bridge} 2>/dev/null; ${t} -w -X PAAS-IN-${bridge} 2>/dev/null; ${t} -w -F PAAS-FWD-${bridge} 2>/dev/null; ${t} -w -X PAAS-FWD-${bridge} 2>/dev/null`,
        )
        .join('; ') + '; true',
    );

  beforeAll(async () => {
    rt = createRuntime('native', {
      dataDir: tmp.dir,
      nativeDir: NATIVE_DIR,
      bridge,
      subnet: '10.84.0.0/24',
      networkStateDir: tmp.dir,
      cgroupParent: 'paastest-borders',
    });
    inet = internetStandIn('bi', 84, 'hello from the internet\n');
    host = createServer((_req, res) => res.end('host secret\n'));
    await new Promise<void>((r) => host.listen(0, '::', r));
    hostPort = (host.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const c of await rt.list()) await rt.remove(c.id, { force: true }).catch(() => undefined);
    host?.close();
    inet?.close();
    dropIptables();
    dropBridge(bridge);
    tmp.cleanup();
  });

  it('keeps the host closed and the internet open, idempotently', async () => {
    const c = await rt.create({
      rootfs: { lowers: [testRootfs()] },
      command: ['sleep', '600'],
      net: 'bridge',
    });
    await rt.start(c.id);
    // Only the iptables rules from here on, applied twice as two daemon starts would.
    sh(`nft delete table inet ${filterTable(bridge)}`);
    await iptablesBorders(bridge, { v4: [], v6: [] });
    await iptablesBorders(bridge, { v4: [], v6: [] });
    expect(sh('iptables -w -S INPUT').match(new RegExp(`-j PAAS-IN-${bridge}`, 'g'))).toHaveLength(
      1,
    );
    const probe = async (url: string) =>
      (
        await rt.exec(c.id, {
          command: ['sh', '-c', `timeout 4 wget -q -O - "${url}" 2>/dev/null || echo UNREACHABLE`],
        })
      ).stdout.trim();
    expect(await probe(inet.url)).toBe('hello from the internet');
    expect(await probe(`http://10.84.0.1:${hostPort}/`)).toBe('UNREACHABLE');
    // The router's public ports stay open, and only those.
    const router = createServer((_req, res) => res.end('router\n'));
    await new Promise<void>((r) => router.listen(0, '::', r));
    try {
      const port = (router.address() as { port: number }).port;
      await iptablesBorders(bridge, { v4: [], v6: [] }, [port]);
      expect(await probe(`http://10.84.0.1:${port}/`)).toBe('router');
      expect(await probe(`http://10.84.0.1:${hostPort}/`)).toBe('UNREACHABLE');
    } finally {
      router.close();
    }
  });
});

// IP leases persist across processes, never collide, and are freed on detach; the bridge
// and a container's netns come up and go away cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { dropBridge, links, tempDir } from '../../test/helpers/host.ts';
import { hostVethName, macFor, Network, parseSubnet } from './network.ts';

describe('network', () => {
  const tmp = tempDir('network');
  afterAll(() => {
    // Leave nothing behind even when an assertion failed half-way.
    execFileSync('sh', ['-c', 'ip netns del paas-nettest 2>/dev/null; true']);
    for (const br of ['paastest1', 'paastest2']) dropBridge(br);
    tmp.cleanup();
  });

  it('parses subnets and refuses bad ones naming the field', () => {
    expect(parseSubnet('10.78.1.0/24')).toEqual({
      base: ((10 << 24) | (78 << 16) | (1 << 8)) >>> 0,
      prefix: 24,
      size: 256,
    });
    expect(() => parseSubnet('10.78.1.0')).toThrow(/^subnet: "10.78.1.0" is not CIDR/);
    expect(() => parseSubnet('10.78.1.0/31')).toThrow(/prefix \/31/);
    expect(() => parseSubnet('300.1.1.1/24')).toThrow(/not an IPv4 address/);
    expect(() => new Network({ stateDir: tmp.dir, bridge: 'way-too-long-bridge-name' })).toThrow(
      /^bridge: /,
    );
  });

  it('leases the lowest free address, idempotently, persisted across instances', () => {
    const a = new Network({ stateDir: tmp.dir, bridge: 'paastest1', subnet: '10.79.0.0/29' });
    expect(a.gateway).toBe('10.79.0.1');
    expect(a.lease('c1')).toBe('10.79.0.2');
    expect(a.lease('c2')).toBe('10.79.0.3');
    expect(a.lease('c1')).toBe('10.79.0.2');
    a.close();
    const b = new Network({ stateDir: tmp.dir, bridge: 'paastest1', subnet: '10.79.0.0/29' });
    expect(b.lease('c3')).toBe('10.79.0.4');
    b.release('c2');
    expect(b.lease('c4')).toBe('10.79.0.3');
    expect(b.lease('c5')).toBe('10.79.0.5');
    expect(b.lease('c6')).toBe('10.79.0.6');
    expect(() => b.lease('c7')).toThrow(/no free address left in 10.79.0.0\/29/);
    for (const c of ['c1', 'c3', 'c4', 'c5', 'c6']) b.release(c);
    expect(b.leases()).toEqual([]);
    b.close();
  });

  it('shares leases per bridge across data dirs, and drops those whose netns is long gone', () => {
    const one = new Network({ stateDir: tmp.dir, bridge: 'paastest1', subnet: '10.79.0.0/29' });
    const other = new Network({ stateDir: tmp.dir, bridge: 'paastest2', subnet: '10.79.0.0/29' });
    expect(one.lease('x1')).toBe('10.79.0.2');
    expect(other.lease('y1')).toBe('10.79.0.2');
    // A lease from a container that died uncleanly an hour ago, with no netns left.
    const db = new DatabaseSync(join(tmp.dir, 'leases.db'));
    db.prepare('INSERT INTO leases (bridge, ip, container, created) VALUES (?, ?, ?, ?)').run(
      'paastest1',
      '10.79.0.3',
      'ghost',
      new Date(Date.now() - 3600_000).toISOString(),
    );
    db.close();
    expect(one.lease('x2')).toBe('10.79.0.3');
    expect(one.leases().map((l) => l.container)).toEqual(['x1', 'x2']);
    for (const c of ['x1', 'x2']) one.release(c);
    other.release('y1');
    one.close();
    other.close();
  });

  it('attaches a netns with a veth on the bridge, reachable from the host, and detaches cleanly', async () => {
    const net = new Network({ stateDir: tmp.dir, bridge: 'paastest1', subnet: '10.79.0.0/29' });
    const nat = await net.ensureBridge();
    expect(['nftables', 'iptables', 'skipped']).toContain(nat);
    expect(links()).toContain('paastest1');
    // The bridge has a fixed MAC of its own that no joining or leaving port changes: a
    // bridge that inherits its lowest port's MAC strands containers' ARP entries for the
    // gateway whenever a deploy adds or removes a veth.
    const bridgeMac = () => readFileSync('/sys/class/net/paastest1/address', 'utf8').trim();
    expect(bridgeMac()).toBe(macFor('10.79.0.1'));
    expect(readFileSync('/sys/class/net/paastest1/addr_assign_type', 'utf8').trim()).toBe('3');
    const a = await net.attach('nettest');
    expect(bridgeMac()).toBe(macFor('10.79.0.1'));
    expect(a).toEqual({
      netnsPath: '/run/netns/paas-nettest',
      ip: '10.79.0.2',
      gateway: '10.79.0.1',
      prefix: 29,
    });
    expect(links()).toContain(hostVethName('nettest'));
    // A listener inside the netns answers the host at the container's address.
    const server = spawn(
      'ip',
      [
        'netns',
        'exec',
        'paas-nettest',
        process.execPath,
        '-e',
        "require('node:net').createServer((s) => s.end('pong')).listen(7000, () => console.log('up'))",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => server.stdout.once('data', r));
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(7000, a.ip);
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
    server.kill();
    expect(reply).toBe('pong');
    const inside = execFileSync('ip', ['-n', 'paas-nettest', '-o', '-4', 'addr'], {
      encoding: 'utf8',
    });
    expect(inside).toContain('10.79.0.2/29');
    // The MAC follows the IP, so a container that reuses an address keeps neighbours' ARP right.
    expect(
      execFileSync('ip', ['-n', 'paas-nettest', '-o', 'link', 'show', 'eth0'], {
        encoding: 'utf8',
      }),
    ).toContain(macFor('10.79.0.2'));
    expect(macFor('10.79.0.2')).toBe('02:42:0a:4f:00:02');
    await net.detach('nettest');
    expect(existsSync('/run/netns/paas-nettest')).toBe(false);
    expect(links()).not.toContain(hostVethName('nettest'));
    expect(net.leases()).toEqual([]);
    expect(bridgeMac()).toBe(macFor('10.79.0.1'));
    // An existing bridge that inherited a port's MAC (as older versions left it) is fixed.
    execFileSync('ip', ['link', 'del', 'paastest1']);
    execFileSync('ip', ['link', 'add', 'paastest1', 'type', 'bridge']);
    expect(readFileSync('/sys/class/net/paastest1/addr_assign_type', 'utf8').trim()).not.toBe('3');
    await net.ensureBridge({ nat: false });
    expect(bridgeMac()).toBe(macFor('10.79.0.1'));
    // The setup is remembered, but a bridge removed behind our back is made again.
    execFileSync('ip', ['link', 'del', 'paastest1']);
    await net.ensureBridge({ nat: false });
    expect(links()).toContain('paastest1');
    expect(
      execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', 'paastest1'], { encoding: 'utf8' }),
    ).toContain('10.79.0.1/29');
    execFileSync('ip', ['link', 'del', 'paastest1']);
    net.close();
  });
});
